"""The TFP-JAX bridges: jflows models as tfb.Bijector / tfd.Distribution, and back."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_probability.substrates.jax as tfp

import jflows.bijectors as jb
import jflows.distributions as jd
from jflows.interop import tfp as jtfp
from jflows.nets import MADE

tfb, tfd = tfp.bijectors, tfp.distributions
X = jax.random.normal(jax.random.key(1), (4, 3))


def init(bijector, x=X):
    return bijector.init(jax.random.key(0), x)


def test_event_ndims_and_both_log_dets_elementwise_and_vector():
    for bijector, ndims in ((jb.softplus(), 0), (jb.affine_tril_lowrank(rank=1), 1)):
        params, state = init(bijector)
        t = jtfp.to_bijector(bijector, params, state)
        assert (t.forward_min_event_ndims, t.inverse_min_event_ndims) == (ndims, ndims)
        y, log_det, _ = bijector.forward(params, state, X)
        np.testing.assert_allclose(t.forward(X), y, rtol=1e-6)
        # TFP sums the remaining event axes itself: event_ndims=1 over an elementwise map.
        np.testing.assert_allclose(t.forward_log_det_jacobian(X, event_ndims=1),
                                   log_det if ndims else log_det.sum(-1), rtol=1e-5)
        np.testing.assert_allclose(t.inverse_log_det_jacobian(y, event_ndims=1),
                                   -t.forward_log_det_jacobian(X, event_ndims=1), rtol=1e-5)


def test_conditional_bijector_with_bound_cond():
    bijector = jb.masked_autoregressive(MADE(3, (8,), cond_shape=(2,)))
    params, state = init(bijector)
    cond = jax.random.normal(jax.random.key(2), (4, 2))
    t = jtfp.to_bijector(bijector, params, state, cond=cond)
    y, log_det, _ = bijector.forward(params, state, X, cond=cond)
    np.testing.assert_allclose(t.forward_log_det_jacobian(X, 1), log_det, rtol=1e-5)
    np.testing.assert_allclose(t.inverse(y), X, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="conditional"):
        jtfp.to_bijector(bijector, params, state)


def test_flow_as_tfd_distribution():
    flow = jd.transformed(jd.standard_normal((3,)), jb.chain(jb.affine_tril_lowrank(rank=1),
                                                            jb.leaky_relu()))
    params, state = flow.init(jax.random.key(0))
    dist = jtfp.to_distribution(flow, params, state)
    assert (dist.event_shape, dist.batch_shape) == ((3,), ())
    np.testing.assert_allclose(dist.log_prob(X), flow.log_prob(params, state, X), rtol=1e-6)
    samples = dist.sample((2, 5), seed=jax.random.key(3))
    assert samples.shape == (2, 5, 3)
    x, log_prob = dist.experimental_sample_and_log_prob(7, seed=jax.random.key(4))
    np.testing.assert_allclose(log_prob, flow.log_prob(params, state, x), rtol=1e-5, atol=1e-5)
    # Consumers of TFP distributions: transforms, independent samples, VI losses.
    squashed = tfd.TransformedDistribution(dist, tfb.Exp())
    np.testing.assert_allclose(squashed.log_prob(jnp.exp(X)),
                               dist.log_prob(X) - X.sum(-1), rtol=1e-5)
    assert tfd.Sample(dist, 4).log_prob(jnp.zeros((4, 3))).shape == ()

    def vi_loss(p):
        surrogate = jtfp.to_distribution(flow, p, state)
        target = tfd.MultivariateNormalDiag(jnp.ones(3), 0.5 * jnp.ones(3)).log_prob
        return tfp.vi.monte_carlo_variational_loss(target, surrogate, sample_size=16,
                                                   seed=jax.random.key(5))

    grads = jax.grad(vi_loss)(params)
    assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))
    assert any(np.any(g != 0) for g in jax.tree_util.tree_leaves(grads))


def test_conditional_flow_batch_shape_is_conds():
    flow = jd.transformed(jd.standard_normal((3,)),
                          jb.masked_autoregressive(MADE(3, (8,), cond_shape=(2,))))
    params, state = flow.init(jax.random.key(0))
    cond = jax.random.normal(jax.random.key(2), (4, 2))
    dist = jtfp.to_distribution(flow, params, state, cond=cond)
    assert (dist.batch_shape, dist.event_shape) == ((4,), (3,))
    x = dist.sample(6, seed=jax.random.key(3))
    assert x.shape == (6, 4, 3)
    np.testing.assert_allclose(dist.log_prob(x), flow.log_prob(params, state, x, cond=cond),
                               rtol=1e-6)


def test_hmc_on_a_flow_density():
    flow = jd.transformed(jd.standard_normal((2,)), jb.affine_tril_lowrank())
    params, state = flow.init(jax.random.key(0))
    target = jtfp.to_distribution(flow, params, state)
    kernel = tfp.mcmc.HamiltonianMonteCarlo(target.log_prob, step_size=0.3,
                                            num_leapfrog_steps=3)
    samples = tfp.mcmc.sample_chain(20, jnp.zeros(2), kernel=kernel, trace_fn=None,
                                    seed=jax.random.key(1))
    assert samples.shape == (20, 2) and np.all(np.isfinite(samples))


def test_tfp_bijector_and_distribution_into_jflows_with_grads():
    flow = jd.transformed(
        jtfp.from_distribution(tfd.MultivariateNormalDiag(jnp.zeros(3), jnp.ones(3))),
        jb.chain(jtfp.from_bijector(tfb.Shift(jnp.full(3, 0.5))),
                 jtfp.from_bijector(tfb.Scale(jnp.full(3, 2.0)))))
    params, state = flow.init(jax.random.key(0))
    # TFP-JAX has no tf.Variable: the objects' parameters became jflows params.
    assert jax.tree_util.tree_map(jnp.shape, params["bijector"]) == (((3,),), ((3,),))
    reference = tfd.TransformedDistribution(
        tfd.MultivariateNormalDiag(jnp.zeros(3), jnp.ones(3)),
        tfb.Chain([tfb.Scale(jnp.full(3, 2.0)), tfb.Shift(jnp.full(3, 0.5))]))  # shift first
    np.testing.assert_allclose(flow.log_prob(params, state, X), reference.log_prob(X),
                               rtol=1e-6)
    # The gradient w.r.t. the lifted shift is what TFP gives w.r.t. its own parameter.
    grads = jax.grad(lambda p: flow.log_prob(p, state, X).sum())(params)
    expected = jax.grad(lambda shift: tfd.TransformedDistribution(
        tfd.MultivariateNormalDiag(jnp.zeros(3), jnp.ones(3)),
        tfb.Chain([tfb.Scale(jnp.full(3, 2.0)), tfb.Shift(shift)])).log_prob(X).sum())(
        jnp.full(3, 0.5))
    np.testing.assert_allclose(grads["bijector"][0][0], expected, rtol=1e-5)
    x = flow.sample(params, state, jax.random.key(2), (5,))
    assert x.shape == (5, 3)


def test_from_bijector_with_make_keeps_scale_positive():
    bijector = jtfp.from_bijector(lambda p: tfb.Scale(jnp.exp(p["log_scale"])),
                                  {"log_scale": jnp.zeros(3)})
    params, state = init(bijector)
    params = {"log_scale": jnp.log(jnp.array([1.0, 2.0, 4.0]))}
    y, log_det, _ = bijector.forward(params, state, X)
    np.testing.assert_allclose(y, X * jnp.array([1.0, 2.0, 4.0]), rtol=1e-6)
    np.testing.assert_allclose(log_det, jnp.broadcast_to(jnp.log(jnp.array([1.0, 2.0, 4.0])),
                                                         (4, 3)), rtol=1e-6)


def test_clear_errors():
    with pytest.raises(TypeError, match="jflows Bijector"):
        jtfp.to_bijector(tfb.Exp(), ())
    with pytest.raises(TypeError, match="tfp.*Bijector"):
        jtfp.from_bijector(jb.exp())
    with pytest.raises(ValueError, match="batch_shape"):
        jtfp.from_distribution(tfd.Normal(jnp.zeros(3), 1.0))
    lifted = jtfp.from_bijector(tfb.Shift(jnp.zeros(3)))
    with pytest.raises(ValueError, match="params"):
        lifted.forward({"shift": jnp.zeros(3)}, (), X)
