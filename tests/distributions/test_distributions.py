"""Base distributions and transformed distributions against TFP-JAX."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_probability.substrates.jax as tfp

import jflows.bijectors as jb
import jflows.distributions as jd

tfd, tfb = tfp.distributions, tfp.bijectors
KEY = jax.random.key(3)


@pytest.mark.parametrize(
    ("ours", "reference"),
    [
        (jd.standard_normal((3,)), tfd.Independent(tfd.Normal(jnp.zeros(3), 1.0), 1)),
        (jd.diag_normal((3,), loc=1.0, scale=0.8),
         tfd.Independent(tfd.Normal(jnp.ones(3), 0.8), 1)),
        (jd.uniform((3,), -1.0, 2.0), tfd.Independent(tfd.Uniform(-jnp.ones(3), 2.0), 1)),
        (jd.logistic((3,), 0.5, 2.0), tfd.Independent(tfd.Logistic(jnp.full(3, 0.5), 2.0), 1)),
    ],
    ids=["standard_normal", "diag_normal", "uniform", "logistic"],
)
def test_base_log_prob_matches_tfp_and_samples_have_the_event_shape(ours, reference):
    params = ours.init(KEY)
    x = jax.random.uniform(KEY, (5, 3), minval=-0.9, maxval=1.9)
    np.testing.assert_allclose(ours.log_prob(params, x), reference.log_prob(x), rtol=1e-6)
    samples = ours.sample(params, KEY, (7,))
    assert samples.shape == (7, 3) and samples.dtype == jnp.float32
    assert ours.sample(params, KEY, 4).shape == (4, 3)


def test_learnable_diag_normal():
    d = jd.diag_normal((2,))
    params = d.init(KEY)
    assert set(params) == {"loc", "log_scale"}
    params = {"loc": jnp.array([1.0, -1.0]), "log_scale": jnp.array([0.0, 1.0])}
    x = jnp.array([0.5, 0.5])
    reference = tfd.Independent(tfd.Normal(params["loc"], jnp.exp(params["log_scale"])), 1)
    np.testing.assert_allclose(d.log_prob(params, x), reference.log_prob(x), rtol=1e-6)


def test_wrong_event_shape_is_a_clear_error():
    d = jd.standard_normal((3,))
    with pytest.raises(ValueError, match=r"expected the trailing event shape \(3,\).*\(5, 4\)"):
        d.log_prob({}, jnp.zeros((5, 4)))
    with pytest.raises(ValueError, match="finite low < high"):
        jd.uniform((), 1.0, 0.0)


def test_transformed_log_prob_matches_tfp():
    v = jnp.array([0.9, -0.3, 1.2])
    u = jnp.array([[0.4, -0.2], [0.1, 0.3]])
    flow = jd.transformed(
        jd.standard_normal((2,)),
        jb.chain(jb.leaky_relu(0.5), jb.affine_tril_lowrank(rank=2)),
    )
    params, state = flow.init(KEY)
    params["bijector"][1].update(tril=v, update=u, shift=jnp.array([1.0, -2.0]))
    operator = tfp.tf2jax.linalg.LinearOperatorLowRankUpdate(
        tfp.tf2jax.linalg.LinearOperatorLowerTriangular(tfp.math.fill_triangular(v)), u=u)
    leaky = tfb.Inline(
        forward_fn=lambda x: jnp.where(x >= 0, x, 0.5 * x),
        inverse_fn=lambda y: jnp.where(y >= 0, y, 2.0 * y),
        inverse_log_det_jacobian_fn=lambda y: jnp.where(y >= 0, 0.0, jnp.log(2.0)).sum(-1),
        forward_min_event_ndims=1,
    )
    reference = tfd.TransformedDistribution(
        tfd.MultivariateNormalDiag(jnp.zeros(2)),
        tfb.Chain([tfb.Shift(jnp.array([1.0, -2.0])), tfb.ScaleMatvecLinearOperator(operator),
                   leaky]),
    )
    y = jax.random.normal(KEY, (10, 2)) * 2.0
    log_prob, _ = flow.log_prob(params, state, y)
    np.testing.assert_allclose(log_prob, reference.log_prob(y), rtol=1e-5, atol=1e-5)
    samples, sample_log_prob = flow.sample_and_log_prob(params, state, KEY, (6,))
    assert samples.shape == (6, 2)
    np.testing.assert_allclose(sample_log_prob, flow.log_prob(params, state, samples)[0],
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(flow.sample(params, state, KEY, (6,)), samples)


def test_cdf_of_increasing_scalar_flow_and_its_limits():
    flow = jd.transformed(jd.standard_normal(), jb.chain(jb.scale(2.0), jb.shift(1.0)))
    params, state = flow.init(KEY)
    y = jnp.array([-1.0, 1.0, 3.0])
    np.testing.assert_allclose(flow.cdf(params, state, y), tfd.Normal(1.0, 2.0).cdf(y), rtol=1e-6)
    vector_flow = jd.transformed(jd.standard_normal((2,)), jb.exp())
    p, s = vector_flow.init(KEY)
    with pytest.raises(NotImplementedError, match="scalar base distribution"):
        vector_flow.cdf(p, s, jnp.ones(2))


def test_training_mode_state_flows_through_log_prob():
    flow = jd.transformed(jd.standard_normal((3,)), jb.batch_norm())
    params, state = flow.init(KEY)
    _, new_state = flow.log_prob(params, state, 5.0 + jax.random.normal(KEY, (32, 3)), train=True)
    assert np.all(new_state.mean > 0.0)


def test_float64_init():
    with jax.enable_x64(True):
        flow = jd.transformed(jd.diag_normal((2,)), jb.affine_tril_lowrank(rank=1))
        params, _ = flow.init(KEY, jnp.float64)
        assert all(a.dtype == jnp.float64 for a in jax.tree_util.tree_leaves(params))
