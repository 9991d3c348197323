"""The new-model example of CONTRIBUTING.md runs and satisfies the DensityModel protocol."""

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jflows.bijectors as jb
import jflows.distributions as jd

CONTRIBUTING = Path(__file__).resolve().parents[1] / "CONTRIBUTING.md"


def test_the_laplace_example_is_a_density_model_with_the_right_density():
    (source,) = re.findall(r"```python\n(.*?)```", CONTRIBUTING.read_text(), re.S)
    namespace = {}
    exec(compile(source, str(CONTRIBUTING), "exec"), namespace)  # noqa: S102
    model = namespace["laplace"](3)
    assert isinstance(model, jd.DensityModel)
    params, state = model.init(jax.random.key(0))
    x = jnp.array([[0.5, -1.0, 2.0]])
    np.testing.assert_allclose(model.log_prob(params, state, x),
                               jax.scipy.stats.laplace.logpdf(x).sum(-1), rtol=1e-6)
    flow = jd.transformed(model, jb.scale())
    flow_params, flow_state = flow.init(jax.random.key(1))
    samples, log_prob = flow.sample_and_log_prob(flow_params, flow_state, jax.random.key(2), 4)
    np.testing.assert_allclose(log_prob, flow.log_prob(flow_params, flow_state, samples),
                               rtol=1e-5)
