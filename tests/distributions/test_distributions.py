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
    params, state = ours.init(KEY)
    assert state == ()
    x = jax.random.uniform(KEY, (5, 3), minval=-0.9, maxval=1.9)
    np.testing.assert_allclose(ours.log_prob(params, state, x), reference.log_prob(x), rtol=1e-6)
    samples = ours.sample(params, state, KEY, (7,))
    assert samples.shape == (7, 3) and samples.dtype == jnp.float32
    assert ours.sample(params, state, KEY, 4).shape == (4, 3)
    drawn, drawn_log_prob = ours.sample_and_log_prob(params, state, KEY, (7,))
    np.testing.assert_allclose(drawn_log_prob, reference.log_prob(drawn), rtol=1e-6)
    assert isinstance(ours, jd.DensityModel)


def test_learnable_diag_normal():
    d = jd.diag_normal((2,))
    params, state = d.init(KEY)
    assert set(params) == {"loc", "log_scale"}
    params = {"loc": jnp.array([1.0, -1.0]), "log_scale": jnp.array([0.0, 1.0])}
    x = jnp.array([0.5, 0.5])
    reference = tfd.Independent(tfd.Normal(params["loc"], jnp.exp(params["log_scale"])), 1)
    np.testing.assert_allclose(d.log_prob(params, state, x), reference.log_prob(x), rtol=1e-6)


def test_wrong_event_shape_is_a_clear_error():
    d = jd.standard_normal((3,))
    with pytest.raises(ValueError, match=r"expected the trailing event shape \(3,\).*\(5, 4\)"):
        d.log_prob({}, (), jnp.zeros((5, 4)))
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
    log_prob = flow.log_prob(params, state, y)
    np.testing.assert_allclose(log_prob, reference.log_prob(y), rtol=1e-5, atol=1e-5)
    samples, sample_log_prob = flow.sample_and_log_prob(params, state, KEY, (6,))
    assert samples.shape == (6, 2)
    np.testing.assert_allclose(sample_log_prob, flow.log_prob(params, state, samples),
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


def test_training_mode_state_flows_through_log_prob_and_state():
    flow = jd.transformed(jd.standard_normal((3,)), jb.batch_norm())
    params, state = flow.init(KEY)
    data = 5.0 + jax.random.normal(KEY, (32, 3))
    log_prob, new_state, info = flow.log_prob_and_state(params, state, data, train=True)
    assert log_prob.shape == (32,) and info["base"] == ()
    assert int(info["bijector"].low_variance_dims) == 0
    assert np.all(new_state["bijector"].mean > 0.0)
    # The evaluation path uses the stored statistics and returns the array alone.
    np.testing.assert_allclose(flow.log_prob(params, state, data),
                               flow.log_prob_and_state(params, state, data, train=False)[0])


NORMAL = (jd.standard_normal(), tfd.Normal(0.0, 1.0))
POSITIVE = (jd.uniform((), 0.5, 3.0), tfd.Uniform(0.5, 3.0))


@pytest.mark.parametrize(
    ("bases", "bijector", "reference"),
    [
        (NORMAL, jb.scale(-2.0), tfb.Scale(-2.0)),
        (NORMAL, jb.chain(jb.exp(), jb.scale(-0.5)), tfb.Chain([tfb.Scale(-0.5), tfb.Exp()])),
        (POSITIVE, jb.invert(jb.exp()), tfb.Invert(tfb.Exp())),
        (POSITIVE, jb.chain(jb.invert(jb.exp()), jb.scale(-1.0)),
         tfb.Chain([tfb.Scale(-1.0), tfb.Invert(tfb.Exp())])),
        (NORMAL, jb.chain(jb.sigmoid(), jb.scale(-3.0), jb.shift(1.0)),
         tfb.Chain([tfb.Shift(1.0), tfb.Scale(-3.0), tfb.Sigmoid()])),
    ],
    ids=["scale_negative", "exp_then_negative_scale", "log", "log_then_negate",
         "sigmoid_decreasing"],
)
def test_cdf_matches_tfp_for_increasing_and_decreasing_bijectors(bases, bijector, reference):
    base, reference_base = bases
    flow = jd.transformed(base, bijector)
    params, state = flow.init(KEY)
    x = reference_base.sample(9, seed=KEY)
    y = reference.forward(x)
    expected = tfd.TransformedDistribution(reference_base, reference)
    np.testing.assert_allclose(flow.cdf(params, state, y), expected.cdf(y), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(flow.log_prob(params, state, y), expected.log_prob(y),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch_shape", [(), (4,), (3, 3)])
def test_elementwise_bijector_over_a_vector_base_sums_its_log_det_like_tfp(batch_shape):
    """The issue's example: scale() over a 3-vector base, batches (3, 3) and (4, 3)."""
    flow = jd.transformed(jd.standard_normal((3,)), jb.chain(jb.shift(), jb.scale()))
    params, state = flow.init(KEY)
    params["bijector"] = ({"shift": jnp.asarray(0.3)}, {"log_scale": jnp.asarray(0.7)})
    reference = tfd.TransformedDistribution(
        tfd.Independent(tfd.Normal(jnp.zeros(3), 1.0), 1),
        tfb.Chain([tfb.Scale(jnp.exp(0.7)), tfb.Shift(0.3)]))
    y = jax.random.normal(KEY, (*batch_shape, 3))
    log_prob = flow.log_prob(params, state, y)
    assert log_prob.shape == batch_shape
    np.testing.assert_allclose(log_prob, reference.log_prob(y), rtol=1e-5, atol=1e-5)
    # At y = 1 the gradient w.r.t. the log-scale of N(0, s^2 I) is -3 + |y|^2 / s^2.
    ones = jnp.ones((3, 3))
    grad = jax.grad(lambda p: flow.log_prob(p, state, ones).sum())(
        {"base": {}, "bijector": ({"shift": jnp.asarray(0.0)}, {"log_scale": jnp.asarray(0.0)})})
    np.testing.assert_allclose(grad["bijector"][1]["log_scale"], 3 * (-3.0 + 3.0), atol=1e-5)


def test_image_base_with_elementwise_and_vector_bijectors_matches_tfp():
    base = jd.standard_normal((2, 2, 3))
    reference_base = tfd.Independent(tfd.Normal(jnp.zeros((2, 2, 3)), 1.0), 3)
    flow = jd.transformed(base, jb.chain(jb.exp(), jb.permute([2, 0, 1])))
    params, state = flow.init(KEY)
    reference = tfd.TransformedDistribution(
        reference_base, tfb.Chain([tfb.Permute([2, 0, 1]), tfb.Exp()]))
    y = jnp.exp(jax.random.normal(KEY, (5, 2, 2, 3)))[..., jnp.array([2, 0, 1])]
    np.testing.assert_allclose(flow.log_prob(params, state, y), reference.log_prob(y),
                               rtol=1e-5, atol=1e-5)


def test_ranks_that_cannot_be_reconciled_are_refused_when_built():
    with pytest.raises(ValueError, match=r"rank 1 \(event_ndims=1\).*rank 0"):
        jd.transformed(jd.standard_normal(), jb.affine_tril_lowrank())
    with pytest.raises(ValueError, match="different cond shapes"):
        jd.transformed(jd.standard_normal((2,)), jb.Bijector(*jb.shift()[:5], cond_shape=(2,)),
                       cond_shape=(3,))


def test_block_reshape_and_scan_work_inside_transformed():
    block = jd.transformed(jd.standard_normal((3,)), jb.block([jb.scale(), jb.shift()], [1, 2]))
    params, state = block.init(KEY)
    assert block.log_prob(params, state, jnp.ones((4, 3))).shape == (4,)
    reshaped = jd.transformed(jd.standard_normal((6,)), jb.reshape((2, 3), (6,)))
    assert reshaped.event_shape == (2, 3)
    params, state = reshaped.init(KEY)
    y = reshaped.sample(params, state, KEY, (5,))
    assert y.shape == (5, 2, 3)
    np.testing.assert_allclose(reshaped.log_prob(params, state, y),
                               jd.standard_normal((6,)).log_prob({}, (), y.reshape(5, 6)),
                               rtol=1e-6)


def test_float64_init():
    with jax.enable_x64(True):
        flow = jd.transformed(jd.diag_normal((2,)), jb.affine_tril_lowrank(rank=1))
        params, _ = flow.init(KEY, jnp.float64)
        assert all(a.dtype == jnp.float64 for a in jax.tree_util.tree_leaves(params))
