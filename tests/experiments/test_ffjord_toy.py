"""Smoke test of experiments/ffjord_toy: a tiny run of every part writes its outputs."""

import dataclasses

import numpy as np
import pytest

from experiments.ffjord_toy.config import Config
from experiments.ffjord_toy.main import main


@pytest.mark.slow
def test_ffjord_toy_smoke(tmp_path):
    config = dataclasses.replace(Config(), epochs=2, num_points=512, num_test_points=256,
                                 out_dir=str(tmp_path))
    results = main(config, parts=("moons", "toys", "rnode"), toys=("rings",))
    assert set(results) == {"moons", "rings", "moons_paper_tol"} | {
        f"{prefix}_rnode_{w}" for prefix in ("moons", "moons_paper_tol") for w in (0.01, 0.1)}
    for result in results.values():
        assert np.isfinite(result["nll_test"]) and result["seconds_per_epoch"] > 0
        assert result["final_nfe_per_solve"] >= 7  # Dopri5: at least one step
    assert results["moons"]["nll_train"] < results["moons"]["nll_train_initial"] - 0.1
    for name in ("moons_start.png", "moons_end.png", "density_grid.png", "rnode.png",
                 "results.json"):
        assert (tmp_path / name).stat().st_size > 1000
