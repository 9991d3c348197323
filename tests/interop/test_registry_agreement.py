"""Every bijector of the shared registry through the distrax and TFP-JAX bridges, both ways.

Per case (params perturbed, cond and key as the shared checks use them):

* to the peers: the distrax and TFP wrappers give jflows' values and log-dets in both
  directions, and TFP's own ``TransformedDistribution`` (which reduces the log-det over
  the event axes left to the bijector from ``forward_min_event_ndims``) gives the jflows
  flow's ``log_prob`` over a TFP base;
* back from the peers: the TFP and distrax wrappers, lifted again with ``from_bijector``
  (``make(params)`` form) inside ``jd.transformed``, give the same ``log_prob``; the
  gradient w.r.t. the params through TFP's TransformedDistribution is jflows'.

The core catalogue's cases run in the default suite, the network-based ones (MADE,
FFJORD) with ``-m slow``. Agreement is to float32 rounding (the same arithmetic runs on
both sides, possibly fused differently by XLA). No case is skipped: FFJORD evaluates with
its exact trace (``train=False``), so no registry case has a stochastic log-det here.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_probability.substrates.jax as tfp

import jflows.distributions as jd
from jflows.bijectors.base import output_event_ndims
from jflows.interop import distrax as jdx
from jflows.interop import tfp as jtfp
from jflows.testing import setup_case
from tests.registry import CASES, core

# The core catalogue runs in the default suite; network-based cases (MADE, FFJORD, and
# any area added later) compile much more and run with -m slow.
PARAMS = [pytest.param(case, id=case.name,
                       marks=() if any(case is c for c in core.CASES) else pytest.mark.slow)
          for case in CASES]

tfd = tfp.distributions
RTOL, ATOL = 2e-6, 2e-5


def close(actual, expected, what):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=RTOL, atol=ATOL,
                               err_msg=what)


def bound_kwargs(s):
    return {k: v for k, v in s.kwargs.items() if k in ("cond", "key")}


def call(s, direction, v):
    out, log_det, _ = getattr(s.bijector, direction)(s.params, s.state, v, **s.kwargs)
    return out, log_det


def flow_and_params(case, s):
    """A jflows flow over N(0, I) of the case's event shape with the case's params."""
    flow = jd.transformed(jd.standard_normal(case.event_shape), s.bijector)
    params, state = flow.init(jax.random.key(0))
    return flow, {**params, "bijector": s.params}, {**state, "bijector": s.state}


def check_to_peers(case, s, y, fwd, x_back, inv):
    """The distrax and TFP wrappers give jflows' values and log-dets in both directions."""
    ndims_in, ndims_out = s.bijector.event_ndims, output_event_ndims(s.bijector)
    d = jdx.to_bijector(s.bijector, s.params, s.state, **bound_kwargs(s))
    t = jtfp.to_bijector(s.bijector, s.params, s.state, **bound_kwargs(s))
    assert (d.event_ndims_in, d.event_ndims_out) == (ndims_in, ndims_out)
    assert (t.forward_min_event_ndims, t.inverse_min_event_ndims) == (ndims_in, ndims_out)
    for what, (out, log_det) in {
        "distrax forward": d.forward_and_log_det(s.x),
        "distrax inverse": d.inverse_and_log_det(y),
        "tfp forward": (t.forward(s.x), t.forward_log_det_jacobian(s.x, event_ndims=ndims_in)),
        "tfp inverse": (t.inverse(y), t.inverse_log_det_jacobian(y, event_ndims=ndims_out)),
    }.items():
        expected = (y, fwd) if "forward" in what else (x_back, inv)
        close(out, expected[0], f"{case.name}: {what} value")
        close(log_det, expected[1], f"{case.name}: {what} log-det")


def check_log_prob_both_ways(case, s, y):
    """TFP's TransformedDistribution over the TFP wrapper, and the TFP / distrax wrappers
    lifted back with ``from_bijector``, give the jflows flow's log_prob (and, through TFP,
    its gradient w.r.t. the params)."""
    flow, params, state = flow_and_params(case, s)
    cond, key = s.kwargs.get("cond"), s.kwargs.get("key")
    expected = flow.log_prob(params, state, y, cond=cond, key=key)
    base = tfd.Independent(tfd.Normal(jnp.zeros(case.event_shape), 1.0),
                           reinterpreted_batch_ndims=len(case.event_shape))
    peer = tfd.TransformedDistribution(base, jtfp.to_bijector(
        s.bijector, s.params, s.state, **bound_kwargs(s)))
    close(peer.log_prob(y), expected, f"{case.name}: tfd.TransformedDistribution log_prob")
    for to_bijector, from_bijector in ((jtfp.to_bijector, jtfp.from_bijector),
                                       (jdx.to_bijector, jdx.from_bijector)):
        def make(p, to_bijector=to_bijector):
            return to_bijector(s.bijector, p, s.state, **bound_kwargs(s))

        lifted = jd.transformed(jd.standard_normal(case.event_shape),
                                from_bijector(make, s.params))
        lifted_params, lifted_state = lifted.init(jax.random.key(0))
        lifted_params = {**lifted_params, "bijector": s.params}
        close(lifted.log_prob(lifted_params, lifted_state, y), expected,
              f"{case.name}: {from_bijector.__module__}.from_bijector log_prob")

    def peer_loss(p):
        bijector = jtfp.to_bijector(s.bijector, p, s.state, **bound_kwargs(s))
        return jnp.sum(tfd.TransformedDistribution(base, bijector).log_prob(y))

    grads = jax.grad(peer_loss)(s.params)
    expected_grads = jax.grad(lambda p: jnp.sum(flow.log_prob(
        {**params, "bijector": p}, state, y, cond=cond, key=key)))(s.params)
    for g, e in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(expected_grads),
                    strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4,
                                   err_msg=f"{case.name}: gradient through the TFP bridge")


@pytest.mark.parametrize("case", PARAMS)
def test_registry_case_through_distrax_and_tfp(case):
    s = setup_case(case)
    y, fwd = call(s, "forward", s.x)
    x_back, inv = call(s, "inverse", y)
    check_to_peers(case, s, y, fwd, x_back, inv)
    check_log_prob_both_ways(case, s, y)
