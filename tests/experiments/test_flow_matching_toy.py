"""Smoke test of experiments/flow_matching_toy: a tiny run (moons and the committed
MINIBOONE sample, every method) writes its outputs with finite numbers.

Slow: each method's training step and the evaluation solves compile (the ML-FFJORD step
through the backsolve adjoint alone takes ~20 CPU s).
"""

import dataclasses
import json

import numpy as np
import pytest

from experiments.flow_matching_toy.config import METHODS, Config
from experiments.flow_matching_toy.main import main


@pytest.mark.slow
def test_flow_matching_toy_smoke(tmp_path):
    config = dataclasses.replace(
        Config(), toys=("moons",), num_points=512, num_test_points=128, toy_budget_s=1.0,
        miniboone_budget_s=1.0, toy_hidden=(8,), miniboone_hidden=(8,), evaluations=2,
        eval_points=64, density_resolution=10, out_dir=str(tmp_path))
    results = main(config)
    for dataset in ("moons", "miniboone"):
        best = min(results[dataset][m]["curve"][-1]["nll"] for m in METHODS)
        assert results[dataset]["target_nll"] >= best
        for method in METHODS:
            result = results[dataset][method]
            assert np.isfinite(result["nll_test"]) and result["steps"] > 1
            assert result["cpu_s"] >= 1.0 and result["nfe_sample"] >= 7
            assert result["cpu_s_to_target"] <= result["cpu_s"]
    assert json.loads((tmp_path / "results.json").read_text())["moons"]["cfm_ot"]["steps"] > 1
    for name in [f"density_grid_{m}.png" for m in METHODS] + ["nll_vs_cpu_seconds.png"]:
        assert (tmp_path / name).stat().st_size > 1000
