"""The README's Quick start and density-model example run as written and are right."""

import pathlib
import re

import numpy as np
import tensorflow_probability.substrates.jax as tfp

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
tfd = tfp.distributions


def _python_block_after(heading: str) -> str:
    text = README.read_text()
    section = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def _run(heading: str) -> dict:
    namespace = {}
    exec(compile(_python_block_after(heading), f"README {heading}", "exec"), namespace)
    return namespace


def test_quick_start_runs_and_fits():
    namespace = _run("## Quick start")
    assert namespace["samples"].shape == (5, 2) and namespace["log_prob"].shape == (5,)
    assert float(namespace["loss"]) < 4.5  # N((1,1), 4I) has entropy 4.22 nats


def test_quick_start_hand_written_step_runs():
    text = README.read_text()
    section = text[text.index("## Quick start"):text.index("## The bijector contract")]
    first, second = re.findall(r"```python\n(.*?)```", section, re.S)
    namespace = {}
    exec(compile(first + second + "params, opt_state, loss = step(params, opt_state)\n",
                 "README quick start", "exec"), namespace)
    assert np.isfinite(float(namespace["loss"]))


def test_density_model_example_matches_tfp():
    ns = _run("## Density models")
    y = np.asarray(ns["y"])
    # exp over a 3-D standard normal: a product of log-normals, one log-density per event.
    expected = tfd.LogNormal(0.0, 1.0).log_prob(y).sum(-1)
    np.testing.assert_allclose(ns["log_prob"], expected, rtol=1e-6)
    assert ns["log_prob"].shape == (2,)
    assert ns["info"] == {"base": (), "bijector": ()}
    assert ns["x"].shape == (4, 3) and ns["x_log_prob"].shape == (4,)
    np.testing.assert_allclose(ns["x_log_prob"],
                               tfd.LogNormal(0.0, 1.0).log_prob(ns["x"]).sum(-1), rtol=1e-5)
    # -2 X with X ~ N(0, 1) is N(0, 2^2): a decreasing map, cdf from the survival function.
    np.testing.assert_allclose(ns["cdf"], tfd.Normal(0.0, 2.0).cdf(np.array([-1.0, 0.0, 3.0])),
                               rtol=1e-6)
