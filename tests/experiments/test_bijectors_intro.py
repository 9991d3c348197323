"""The bijectors introduction prints the published numbers and fits the 2-D Gaussian."""

import dataclasses

import numpy as np

from experiments.bijectors_intro.config import Config
from experiments.bijectors_intro.main import main


def test_bijectors_intro_reproduces_the_numbers(tmp_path, capsys):
    config = dataclasses.replace(Config(), out_dir=str(tmp_path), num_steps=600,
                                 num_eval_samples=20_000)
    r = main(config)
    np.testing.assert_allclose(r["normal_log_prob_direct"], -2.938989, atol=1e-6)
    np.testing.assert_allclose(r["normal_log_prob_via_uniform_and_normal_cdf"], -2.938989,
                               atol=1e-6)
    np.testing.assert_allclose(r["scale2_log_prob_of_y"], [-1.6120857, -1.7370857, -2.1120858],
                               atol=1e-6)
    np.testing.assert_allclose(r["scale2_cdf_of_x_before"], [0.5, 0.6914625, 0.8413447],
                               atol=1e-6)
    np.testing.assert_allclose(r["scale2_cdf_of_y_after"], r["scale2_cdf_of_x_before"], atol=1e-7)
    # Maximum likelihood recovers the sample moments; the NLL reaches the Gaussian optimum.
    np.testing.assert_allclose(r["learned_mean"], r["data_mean"], atol=0.08)
    np.testing.assert_allclose(r["learned_covariance"], r["data_covariance"], atol=0.3)
    assert r["final_nll"] < r["true_distribution_nll_on_the_same_data"] + 0.01
    assert (tmp_path / "data_vs_samples.png").stat().st_size > 10_000
    assert "-2.938989" in capsys.readouterr().out
