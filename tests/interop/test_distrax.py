"""The distrax bridges: jflows models as distrax.Bijector / Distribution, and back."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jflows.bijectors as jb
import jflows.distributions as jd
from jflows.interop import distrax as jdx
from jflows.nets import MADE

X = jax.random.normal(jax.random.key(1), (4, 3))


def test_bijector_conformance_and_consumers():
    bijector = jb.chain(jb.affine_tril_lowrank(rank=1), jb.leaky_relu())
    params, state = bijector.init(jax.random.key(0), X)
    d = jdx.to_bijector(bijector, params, state)
    assert (d.event_ndims_in, d.event_ndims_out) == (1, 1)
    y, log_det, _ = bijector.forward(params, state, X)
    np.testing.assert_allclose(d.forward(X), y, rtol=1e-6)
    np.testing.assert_allclose(d.forward_log_det_jacobian(X), log_det, rtol=1e-6)
    np.testing.assert_allclose(d.inverse_log_det_jacobian(y), -log_det, rtol=1e-5, atol=1e-5)
    # distrax's own combinators and conversion accept it.
    assert distrax.as_bijector(d) is d
    inv_y, inv_log_det = distrax.Inverse(d).forward_and_log_det(y)
    np.testing.assert_allclose(inv_y, X, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(inv_log_det, -log_det, rtol=1e-5, atol=1e-5)
    chained = distrax.Chain([distrax.Block(distrax.ScalarAffine(1.0, 2.0), 1), d])
    np.testing.assert_allclose(chained.forward(X), 2.0 * y + 1.0, rtol=1e-6)
    # A distrax Jittable: passed to jit as an argument, params traced.
    np.testing.assert_allclose(jax.jit(lambda b, x: b.forward(x))(d, X), y, rtol=1e-6)


def test_elementwise_bijector_in_distrax_transformed_matches_jflows():
    bijector = jb.softplus()
    flow = jd.transformed(jd.standard_normal((3,)), bijector)
    params, state = flow.init(jax.random.key(0))
    base = distrax.MultivariateNormalDiag(jnp.zeros(3))
    peer = distrax.Transformed(base, distrax.Block(jdx.to_bijector(bijector, (), ()), 1))
    y = jax.nn.softplus(X)
    np.testing.assert_allclose(peer.log_prob(y), flow.log_prob(params, state, y), rtol=1e-5)


def test_conditional_bijector_needs_and_uses_cond():
    bijector = jb.masked_autoregressive(MADE(3, (8,), cond_shape=(2,)))
    params, state = bijector.init(jax.random.key(0), X)
    cond = jax.random.normal(jax.random.key(2), (4, 2))
    d = jdx.to_bijector(bijector, params, state, cond=cond)
    np.testing.assert_allclose(d.forward_and_log_det(X)[1],
                               bijector.forward(params, state, X, cond=cond)[1], rtol=1e-6)
    with pytest.raises(ValueError, match="conditional"):
        jdx.to_bijector(bijector, params, state)


def test_flow_as_distrax_distribution_with_grads():
    flow = jd.transformed(jd.standard_normal((3,)), jb.affine_tril_lowrank(rank=1))
    params, state = flow.init(jax.random.key(0))
    dist = jdx.to_distribution(flow, params, state)
    assert (dist.event_shape, dist.batch_shape) == ((3,), ())
    np.testing.assert_allclose(dist.log_prob(X), flow.log_prob(params, state, X), rtol=1e-6)
    x, log_prob = dist.sample_and_log_prob(seed=jax.random.key(3), sample_shape=(2, 5))
    assert x.shape == (2, 5, 3)
    np.testing.assert_allclose(log_prob, flow.log_prob(params, state, x), rtol=1e-5, atol=1e-5)
    squashed = distrax.Transformed(dist, distrax.Block(distrax.Tanh(), 1))
    assert squashed.sample(seed=jax.random.key(4), sample_shape=3).shape == (3, 3)
    grads = jax.grad(lambda p: jdx.to_distribution(flow, p, state).log_prob(X).sum())(params)
    expected = jax.grad(lambda p: flow.log_prob(p, state, X).sum())(params)
    for g, e in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(expected),
                    strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-6)


def test_distrax_objects_and_learnable_makers_in_jflows():
    flow = jd.transformed(
        jdx.from_distribution(distrax.MultivariateNormalDiag(jnp.zeros(3))),
        jb.chain(jdx.from_bijector(lambda p: distrax.ScalarAffine(p["shift"],
                                                                 jnp.exp(p["log_scale"])),
                                   {"shift": jnp.zeros(3), "log_scale": jnp.zeros(3)}),
                 jdx.from_bijector(distrax.Tanh())))
    params, state = flow.init(jax.random.key(0))
    params["bijector"][0]["shift"] = jnp.array([0.1, -0.2, 0.3])
    reference = distrax.Transformed(
        distrax.MultivariateNormalDiag(jnp.zeros(3)),
        distrax.Block(distrax.Chain([distrax.Tanh(),
                                     distrax.ScalarAffine(jnp.array([0.1, -0.2, 0.3]))]), 1))
    y = 0.5 * jnp.tanh(X)
    np.testing.assert_allclose(flow.log_prob(params, state, y), reference.log_prob(y),
                               rtol=1e-5)
    grads = jax.grad(lambda p: flow.log_prob(p, state, y).sum())(params)
    assert np.all(np.abs(grads["bijector"][0]["shift"]) > 0)
    assert flow.sample(params, state, jax.random.key(2), (5,)).shape == (5, 3)


def test_clear_errors():
    with pytest.raises(TypeError, match="jflows Bijector"):
        jdx.to_bijector(distrax.Tanh(), ())
    with pytest.raises(TypeError, match="distrax.Bijector"):
        jdx.from_bijector(jb.exp())
    with pytest.raises(ValueError, match="batch_shape"):
        jdx.from_distribution(distrax.Normal(jnp.zeros(3), 1.0))
