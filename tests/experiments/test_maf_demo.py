"""The main demo (``make demo``): the committed MINIBOONE sample, and a tiny-budget run."""

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from experiments.maf_demo.config import DATA_FILE, DATA_SHA256, DATA_SHAPE, Config
from experiments.maf_demo.main import Gaussian, load_sample, main
from jflows.data import CorruptDataError
from jflows.data.uci import miniboone_preprocess


def test_committed_sample_is_intact():
    assert hashlib.sha256(DATA_FILE.read_bytes()).hexdigest() == DATA_SHA256
    with np.load(DATA_FILE) as f:
        assert list(f) == ["x"]
        x = f["x"]
    assert x.shape == DATA_SHAPE == (1219, 43) and x.dtype == np.float64
    assert np.all(np.isfinite(x))
    assert (DATA_FILE.parent / "README.md").read_text().count("CC BY 4.0") >= 1
    train, validation, test = miniboone_preprocess(x)
    assert (len(train), len(validation), len(test)) == (989, 109, 121)  # the MAF split
    np.testing.assert_allclose(np.vstack((train, validation)).mean(0), 0, atol=1e-10)


def test_a_modified_copy_of_the_committed_file_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / DATA_FILE.name
    with np.load(DATA_FILE) as f:
        np.savez(copy, x=f["x"][:-1])
    monkeypatch.setattr("experiments.maf_demo.main.DATA_FILE", copy.resolve())
    with pytest.raises(CorruptDataError, match="SHA-256"):
        load_sample(copy)


def test_gaussian_baseline_is_the_maximum_likelihood_normal():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3)) @ rng.normal(size=(3, 3)) + 1.0
    g = Gaussian(x)
    cov = np.cov(x, rowvar=False, bias=True)
    z = np.linalg.solve(cov, (x - x.mean(0)).T).T
    expected = (-0.5 * np.sum((x - x.mean(0)) * z, 1) - 0.5 * np.linalg.slogdet(cov)[1]
                - 1.5 * np.log(2 * np.pi))
    np.testing.assert_allclose(g.log_prob(x), expected, rtol=1e-10)
    # At the maximum-likelihood fit the mean log-density is -(d/2)(1 + log 2 pi) - logdet/2.
    np.testing.assert_allclose(g.log_prob(x).mean(),
                               -1.5 * (1 + np.log(2 * np.pi)) - 0.5 * np.linalg.slogdet(cov)[1])


def test_demo_runs_end_to_end_with_a_tiny_budget(tmp_path, capsys):
    config = dataclasses.replace(Config(), num_layers=2, hidden_sizes=(8,), max_steps=20,
                                 num_samples=200, progress=False, out_dir=str(tmp_path))
    results = main(config)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["data"]["sha256"] == DATA_SHA256
    assert saved["data"]["rows"] == {"train": 989, "validation": 109, "test": 121}
    assert saved["maf"]["steps"] == 20 and saved["maf"]["stop_reason"] == "max_steps"
    for model in ("maf", "gaussian"):
        for split in ("train", "validation", "test"):
            assert np.isfinite(results["log_likelihood"][model][split]["mean"])
    assert np.isfinite(saved["test_maf_minus_gaussian"]["mean"])
    assert saved["samples"]["all_finite"]
    for name in ("learning_curve.png", "samples.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    assert (tmp_path / "fit" / "metrics.jsonl").stat().st_size > 0
    assert "MAF minus Gaussian" in capsys.readouterr().out
