"""The NSF / RealNVP / MAF tabular experiment on a tiny budget: the committed MINIBOONE
sample and one toy, two steps per model."""

import dataclasses
import json

import numpy as np
import pytest

from experiments.nsf_tabular.config import Config
from experiments.nsf_tabular.main import main, make_flow


@pytest.mark.slow
def test_tiny_run_writes_finite_scores_and_figures(tmp_path):
    config = dataclasses.replace(
        Config(), out_dir=str(tmp_path), models=("realnvp", "nsf_autoregressive"),
        toys=("moons",), max_steps=2, toy_train=300, toy_validation=100, toy_test=200,
        num_samples=50, hidden_sizes=(8,), num_bins=3)
    main(config)
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert set(results) == {"miniboone", "moons"}
    for runs in results.values():
        assert set(runs) == {"realnvp", "nsf_autoregressive"}
        for run in runs.values():
            assert np.isfinite(run["test_log_likelihood"]["mean"])
            assert run["steps"] == 2
    assert (tmp_path / "samples_miniboone.png").exists()
    assert (tmp_path / "samples_moons.png").exists()
    assert "NSF-AR(5)" in (tmp_path / "results.md").read_text()


def test_unknown_model_is_refused():
    with pytest.raises(ValueError, match="unknown model"):
        make_flow("glow", 2, Config())(None)
