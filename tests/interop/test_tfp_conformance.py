"""TFP's bijector conformance checks on jflows bijectors through the TFP wrapper.

TFP's own ``bijector_test_util`` (``assert_bijective_and_finite``,
``assert_scalar_congruency``) is not importable here: the ``tensorflow-probability``
wheel ships no test utilities (neither ``python/bijectors/bijector_test_util.py`` nor a
JAX-substrate rewrite of it). The two checks below follow its algorithms and use only
the public ``tfb.Bijector`` API of the wrapped bijector:

* bijective and finite: ``inverse(forward(x)) == x`` and ``forward(inverse(y)) == y``,
  all values finite, ``forward_log_det_jacobian(x) == -inverse_log_det_jacobian(y)``;
* scalar congruency (for scalar bijectors on ``[lower_x, upper_x]``): by the change of
  variables, ``int exp(fldj(x)) dx = |f(upper_x) - f(lower_x)|`` and ``int exp(ildj(y))
  dy = upper_x - lower_x``; TFP estimates both integrals by Monte Carlo on a uniform grid
  (``n = 2000``, ``rtol = 0.01``), and so does this test.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jflows.interop import tfp as jtfp
from jflows.testing import setup_case
from tests.registry import CASES

SCALAR = [c for c in CASES if c.scalar_base]


def interval(case):
    """Inside the domain of ``forward``: the unit interval for bijectors defined there."""
    x = np.asarray(case.sample_x(jax.random.key(0), (64,)))
    return (0.1, 0.9) if x.min() >= 0 and x.max() <= 1 else (-2.0, 2.0)


@pytest.mark.parametrize("case", SCALAR, ids=lambda c: c.name)
def test_scalar_congruency_and_bijective_and_finite(case):
    s = setup_case(case)
    t = jtfp.to_bijector(s.bijector, s.params, s.state, **{
        k: v for k, v in s.kwargs.items() if k == "key"})
    lower, upper = interval(case)
    n = 2000
    x = jnp.broadcast_to(jnp.linspace(lower, upper, n)[:, None], (n, *case.event_shape))
    y = t.forward(x)
    fldj, ildj = t.forward_log_det_jacobian(x, 0), t.inverse_log_det_jacobian(y, 0)
    for what, value in (("y", y), ("fldj", fldj), ("ildj", ildj), ("x", t.inverse(y))):
        assert np.all(np.isfinite(value)), f"{case.name}: {what} not finite"
    np.testing.assert_allclose(t.inverse(y), x, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fldj, -ildj, rtol=1e-4, atol=1e-4)
    # Monte Carlo integrals over the interval (TFP's assert_scalar_congruency).
    f_lower, f_upper = y[0], y[-1]
    mean_exp_fldj = jnp.mean(jnp.exp(fldj), axis=0)
    np.testing.assert_allclose(mean_exp_fldj * (upper - lower), jnp.abs(f_upper - f_lower),
                               rtol=0.01, err_msg=f"{case.name}: int exp(fldj) dx")
    y_grid = jnp.linspace(jnp.minimum(f_lower, f_upper), jnp.maximum(f_lower, f_upper), n)
    mean_exp_ildj = jnp.mean(jnp.exp(t.inverse_log_det_jacobian(y_grid, 0)), axis=0)
    np.testing.assert_allclose(mean_exp_ildj * jnp.abs(f_upper - f_lower), upper - lower,
                               rtol=0.01, err_msg=f"{case.name}: int exp(ildj) dy")
