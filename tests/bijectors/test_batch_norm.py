"""Batch norm: the normalization math, running statistics, named axes, MAF's full-data pass,
and degenerate batches (empty, one value per feature, constant columns)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jflows.bijectors as jb
import jflows.distributions as jd
from jflows.bijectors.batch_norm import BatchNormInfo, batch_norm_metrics
from jflows.flows import maf

KEY = jax.random.key(0)


def data(shape=(64, 3), seed=1):
    return 3.0 + 2.0 * jax.random.normal(jax.random.key(seed), shape)


def test_train_mode_normalizes_with_batch_statistics_and_updates_running_ones():
    b = jb.batch_norm(decay=0.9, eps=1e-5)
    x = data()
    params, state = b.init(KEY, x)
    u, log_det, new_state = b.inverse(params, state, x, train=True)
    np.testing.assert_allclose(u.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(u.var(0), 1.0, rtol=1e-3)
    var = x.var(0)
    np.testing.assert_allclose(log_det, jnp.full(64, -0.5 * jnp.log(var + 1e-5).sum()), rtol=1e-5)
    np.testing.assert_allclose(new_state.mean, 0.1 * x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(new_state.var, 0.9 + 0.1 * var, rtol=1e-5)
    assert float(new_state.decay) == pytest.approx(0.9)


def test_eval_mode_uses_running_statistics_and_forward_inverts_it():
    b = jb.batch_norm()
    x = data()
    params, state = b.init(KEY, x)
    params = {"log_scale": jnp.array([0.1, -0.2, 0.3]), "shift": jnp.array([1.0, 0.0, -1.0])}
    state = state._replace(mean=jnp.array([1.0, 2.0, 3.0]), var=jnp.array([4.0, 1.0, 0.25]))
    u, log_det, same_state = b.inverse(params, state, x)
    expected = (x - state.mean) / jnp.sqrt(state.var + 1e-5) * jnp.exp(params["log_scale"])
    np.testing.assert_allclose(u, expected + params["shift"], rtol=1e-5)
    assert same_state is state
    x_back, fwd_log_det, _ = b.forward(params, state, u, train=True)  # forward never trains
    np.testing.assert_allclose(x_back, x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fwd_log_det, -log_det, rtol=1e-5)


def test_gradient_flows_through_batch_statistics():
    b = jb.batch_norm()
    x = data((8, 2))
    params, state = b.init(KEY, x)

    def loss(x):
        return jnp.sum(b.inverse(params, state, x, train=True)[0][:, 0] ** 3)

    # With batch statistics, shifting every point by the same amount changes nothing.
    grad = jax.grad(loss)(x)
    np.testing.assert_allclose(grad.sum(0), 0.0, atol=1e-4)


def test_named_axis_statistics_equal_the_whole_batch():
    x = data((8, 3))
    whole = jb.batch_norm()
    mapped = jb.batch_norm(axis_name="batch")
    params, state = whole.init(KEY, x)
    u, log_det, new_state = whole.inverse(params, state, x, train=True)
    u_map, log_det_map, state_map = jax.vmap(
        lambda e: mapped.inverse(params, state, e, train=True), axis_name="batch",
        out_axes=(0, 0, None),
    )(x)
    np.testing.assert_allclose(u_map, u, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(log_det_map, log_det, rtol=1e-5)
    np.testing.assert_allclose(state_map.var, new_state.var, rtol=1e-5)


def test_recompute_statistics_from_the_full_dataset_like_maf():
    flow = jb.chain(
        jb.affine_tril_lowrank(rank=1), jb.batch_norm(), jb.reverse(),
        jb.affine_tril_lowrank(rank=1), jb.batch_norm(decay=0.5),
    )
    x = data((256, 3))
    params, state = flow.init(KEY, x)
    params = jax.tree_util.tree_map(lambda a: a + 0.3, params)
    new_state = jb.recompute_batch_norm_statistics(flow, params, state, x)
    # With the statistics of the full data, eval mode equals train mode on the full data.
    u_eval, ld_eval, _ = flow.inverse(params, new_state, x)
    u_train, ld_train, _ = flow.inverse(params, state, x, train=True)
    np.testing.assert_allclose(u_eval, u_train, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ld_eval, ld_train, rtol=1e-5)
    assert float(new_state[1].decay) == pytest.approx(0.99)
    assert float(new_state[4].decay) == pytest.approx(0.5)


def test_recompute_statistics_through_scan():
    flow = jb.scan(jb.chain(jb.affine_tril_lowrank(rank=1), jb.batch_norm()), 3)
    x = data((128, 3))
    params, state = flow.init(KEY, x)
    new_state = jb.recompute_batch_norm_statistics(flow, params, state, x)
    np.testing.assert_allclose(flow.inverse(params, new_state, x)[0],
                               flow.inverse(params, state, x, train=True)[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(new_state[1].decay, 0.99, rtol=1e-6)


def test_train_mode_equals_flax_batch_norm_on_an_ordinary_batch():
    """flax.linen.BatchNorm (an independent implementation with the same conventions:
    biased batch variance, running r <- momentum * r + (1 - momentum) * batch)."""
    x = data()
    flax_bn = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5,
                           use_fast_variance=False)
    scale, bias = jnp.array([0.5, 1.0, 2.0]), jnp.array([1.0, 0.0, -1.0])
    variables = {"params": {"scale": scale, "bias": bias},
                 "batch_stats": flax_bn.init(KEY, x)["batch_stats"]}
    y, updated = flax_bn.apply(variables, x, mutable=["batch_stats"])
    b = jb.batch_norm(decay=0.9, eps=1e-5)
    params, state = b.init(KEY, x)
    params = {"log_scale": jnp.log(scale), "shift": bias}
    u, log_det, new_state, info = b.inverse_with_info(params, state, x, train=True)
    np.testing.assert_allclose(u, y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(new_state.mean, updated["batch_stats"]["mean"], rtol=1e-5)
    np.testing.assert_allclose(new_state.var, updated["batch_stats"]["var"], rtol=1e-5)
    # The log-det of the per-row map with the batch statistics held fixed (TFP's rule).
    batch_stats = state._replace(mean=x.mean(0), var=x.var(0))
    jacobian = jax.jacobian(lambda row: b.inverse(params, batch_stats, row)[0])(x[0])
    np.testing.assert_allclose(log_det[0], jnp.linalg.slogdet(jacobian)[1], rtol=1e-4)
    assert int(info.low_variance_dims) == 0


# --------------------------------------------------------------------------------------
# Degenerate batches in train mode.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 3), (3,), (1, 1, 3)])
def test_one_value_per_feature_in_train_mode_raises(shape):
    b = jb.batch_norm()
    params, state = b.init(KEY, jnp.zeros(3))
    with pytest.raises(ValueError, match=r"at least 2 values per feature, got 1 \(input shape"):
        b.inverse(params, state, jnp.ones(shape), train=True)
    # Evaluation with the running statistics is fine on any batch.
    assert b.inverse(params, state, jnp.ones(shape))[0].shape == shape


def test_spatial_event_axes_count_towards_the_batch():
    b = jb.batch_norm(event_ndims=3)
    params, state = b.init(KEY, jnp.zeros((2, 2, 3)))
    image = data((2, 2, 3))  # one image: 4 values per channel
    u, _, _ = b.inverse(params, state, image, train=True)
    np.testing.assert_allclose(u.reshape(4, 3).mean(0), 0.0, atol=1e-5)
    with pytest.raises(ValueError, match="got 1"):
        b.inverse(params, state, jnp.ones((1, 1, 1, 3)), train=True)


def test_maf_with_batch_norm_on_a_batch_of_one_raises_instead_of_a_bonus_density():
    """The check is static: tracing (eval_shape) raises, no computation needed."""
    flow = maf(3, 2, (8,))
    params, state = jax.eval_shape(flow.init, KEY)

    def train_pass(rows):
        x = jax.ShapeDtypeStruct((rows, 3), jnp.float32)
        return jax.eval_shape(lambda p, s, v: flow.log_prob_and_state(p, s, v, train=True),
                              params, state, x)

    with pytest.raises(ValueError, match="at least 2 values per feature, got 1"):
        train_pass(1)
    assert train_pass(2)[0].shape == (2,)


def test_empty_batch_in_train_mode_raises_and_eval_passes_it_through():
    b = jb.batch_norm()
    params, state = b.init(KEY, jnp.zeros(3))
    with pytest.raises(ValueError, match=r"empty batch \(input shape \(0, 3\)\)"):
        b.inverse(params, state, jnp.zeros((0, 3)), train=True)
    with pytest.raises(ValueError, match="empty batch"):
        jb.recompute_batch_norm_statistics(b, params, state, jnp.zeros((0, 3)))
    u, log_det, same_state = b.inverse(params, state, jnp.zeros((0, 3)))
    assert u.shape == (0, 3) and log_det.shape == (0,) and same_state is state


def test_per_event_vmap_counts_the_mapped_axis():
    b = jb.batch_norm(axis_name="batch")
    params, state = b.init(KEY, jnp.zeros(3))
    call = jax.vmap(lambda e: b.inverse(params, state, e, train=True), axis_name="batch",
                    out_axes=(0, 0, None))
    with pytest.raises(ValueError, match=r"got 1 .*1 shard\(s\) over axis_name 'batch'"):
        call(data((1, 3)))
    # Shards of one row each: the global batch of 8 counts, and equals the whole batch.
    x = data((8, 3))
    shard_rows = jax.vmap(lambda rows: b.inverse(params, state, rows, train=True),
                          axis_name="batch", out_axes=(0, 0, None))(x.reshape(8, 1, 3))
    whole = jb.batch_norm().inverse(params, state, x, train=True)
    np.testing.assert_allclose(shard_rows[0].reshape(8, 3), whole[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(shard_rows[2].var, whole[2].var, rtol=1e-5)


def test_unbound_axis_name_under_jit_uses_the_input_as_the_whole_batch():
    named = jb.batch_norm(axis_name="batch")
    x = data((8, 3))
    params, state = named.init(KEY, x)
    u, log_det, new_state = jax.jit(lambda v: named.inverse(params, state, v, train=True))(x)
    reference = jb.batch_norm().inverse(params, state, x, train=True)
    np.testing.assert_allclose(u, reference[0], rtol=1e-6)
    np.testing.assert_allclose(log_det, reference[1], rtol=1e-6)
    np.testing.assert_allclose(new_state.var, reference[2].var, rtol=1e-6)
    with pytest.raises(ValueError, match="axis_name 'batch' is not bound here"):
        jax.jit(lambda v: named.inverse(params, state, v, train=True))(x[0])


def constant_column(value=7.0, n=16):
    """Three features, the middle one constant."""
    return data((n, 3)).at[:, 1].set(value)


def test_constant_column_is_kept_with_eps_and_reported_in_the_info():
    b = jb.batch_norm(eps=1e-5)
    x = constant_column()
    params, state = b.init(KEY, x)
    u, log_det, new_state, info = b.inverse_with_info(params, state, x, train=True)
    var = x.var(0)
    assert float(var[1]) == 0.0
    np.testing.assert_allclose(u[:, 1], 0.0, atol=1e-6)
    np.testing.assert_allclose(log_det, -0.5 * jnp.log(var + 1e-5).sum(), rtol=1e-5)
    assert isinstance(info, BatchNormInfo) and int(info.low_variance_dims) == 1
    assert np.isfinite(new_state.var).all()
    # The running statistics report it too once they hold it (eval and sampling direction).
    stored = state._replace(var=jnp.array([1.0, 0.0, 2.0]))
    assert int(b.inverse_with_info(params, stored, x)[3].low_variance_dims) == 1
    assert int(b.forward_with_info(params, stored, u)[3].low_variance_dims) == 1
    assert int(b.inverse_with_info(params, state, x)[3].low_variance_dims) == 0


@pytest.mark.parametrize("factor", [100.0, 1.0])
@pytest.mark.parametrize(("fraction", "counted"), [(0.5, 1), (0.99, 1), (1.01, 0), (2.0, 0)])
def test_low_variance_threshold_is_a_factor_times_eps(factor, fraction, counted):
    """A column of +-a has batch variance a^2: counted when a^2 <= factor * eps."""
    eps = 1e-2  # large enough that float32 resolves the boundary
    b = jb.batch_norm(eps=eps, low_variance_factor=factor)
    a = float(np.sqrt(fraction * factor * eps))
    x = data((16, 3)).at[:, 0].set(jnp.tile(jnp.array([a, -a]), 8))
    params, state = b.init(KEY, x)
    info = b.inverse_with_info(params, state, x, train=True)[3]
    assert int(info.low_variance_dims) == counted


def test_maf_on_a_constant_column_reports_low_variance_dims():
    """The issue's case: MADE passes the constant column on with a variance of a few eps."""
    flow = maf(3, 2, (8,))
    params, state = flow.init(KEY)
    metrics = jax.jit(lambda x: batch_norm_metrics(
        flow.log_prob_and_state(params, state, x, train=True)[2]))
    assert int(metrics(data((64, 3)).at[:, 0].set(7.0))["batch_norm_low_variance_dims"]) >= 1
    assert int(metrics(data((64, 3)))["batch_norm_low_variance_dims"]) == 0


def test_low_variance_metric_totals_layers_of_chains_scans_and_transformed_flows():
    flow = jb.chain(jb.batch_norm(), jb.reverse(), jb.scan(jb.batch_norm(), 2))
    x = constant_column()
    params, state = flow.init(KEY, x)
    _, _, _, info = jax.jit(lambda v: flow.inverse_with_info(params, state, v, train=True))(x)
    assert info[1] == () and info[2].low_variance_dims.shape == (2,)
    # Each of the three layers sees the constant feature (u = 0 there).
    assert int(batch_norm_metrics(info)["batch_norm_low_variance_dims"]) == 3
    model = jd.transformed(jd.standard_normal((3,)), flow)
    p, s = model.init(KEY)
    healthy = model.log_prob_and_state(p, s, data((16, 3)), train=True)[2]
    assert int(batch_norm_metrics(healthy)["batch_norm_low_variance_dims"]) == 0
    assert batch_norm_metrics({"base": (), "bijector": ()}) == {}


def test_eps_and_low_variance_factor_must_be_non_negative():
    with pytest.raises(ValueError, match="eps must be >= 0, got -1"):
        jb.batch_norm(eps=-1.0)
    with pytest.raises(ValueError, match="low_variance_factor must be >= 0, got -2"):
        jb.batch_norm(low_variance_factor=-2.0)
