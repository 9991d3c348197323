"""Datasets by name."""

from __future__ import annotations

import numpy as np
import pytest

import jflows.data as jdata


def test_available_lists_every_issue_dataset():
    names = set(jdata.available())
    assert {"power", "gas", "hepmass", "miniboone", "bsds300", "mnist", "cifar10",
            "quickdraw", "speech_commands", "moons", "moons_ffjord", "8gaussians",
            "checkerboard", "pinwheel", "circles", "rings", "swissroll", "2spirals"} <= names


def test_load_toy_by_name_is_deterministic_with_independent_splits():
    ds = jdata.load("Moons", n_train=100, n_validation=10, n_test=20, seed=5)
    assert [len(s["x"]) for s in ds.splits.values()] == [100, 10, 20]
    assert ds.info["name"] == "moons"
    again = jdata.load("moons", n_train=100, n_validation=10, n_test=20, seed=5)
    np.testing.assert_array_equal(ds.test["x"], again.test["x"])
    assert not np.array_equal(ds.train["x"][:10], ds.validation["x"])


def test_load_passes_arguments_to_the_loader(tmp_path):
    with pytest.raises(jdata.MissingDataError, match="zenodo"):
        jdata.load("gas", data_dir=tmp_path, download=False)


def test_unknown_name_and_register():
    with pytest.raises(KeyError, match="available: .*moons"):
        jdata.load("imagenet")
    with pytest.raises(ValueError, match="already registered"):
        jdata.register("moons", lambda: None)
    toy = jdata.Dataset({"x": np.zeros((2, 1))}, None, None, {"name": "mine"})
    jdata.register("Mine", lambda: toy)
    try:
        assert jdata.load("mine") is toy and jdata.load("MINE") is toy
    finally:
        jdata.registry._LOADERS.pop("mine")


def test_dataset_validates_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        jdata.Dataset({"x": np.zeros(3), "label": np.zeros(2)}, None, None)
