"""The README's FFJORD example runs as written and trains (Hutchinson + RNODE, jax.grad)."""

import numpy as np

from tests.test_readme import _python_block_after


def test_ffjord_readme_example_trains():
    namespace = {}
    exec(compile(_python_block_after("## FFJORD"), "README-ffjord", "exec"), namespace)
    losses = namespace["losses"]
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-4:]) < losses[0] - 0.5, losses
    assert float(namespace["metrics"]["nfe_per_solve"]) > 0
    assert np.all(np.isfinite(namespace["test_log_prob"]))
