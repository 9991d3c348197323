"""Batch norm: the normalization math, running statistics, named axes, MAF's full-data pass."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jflows.bijectors as jb

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


def test_single_event_in_train_mode_needs_a_batch_or_axis_name():
    b = jb.batch_norm()
    params, state = b.init(KEY, jnp.zeros(3))
    with pytest.raises(ValueError, match="batch statistics need a batch"):
        b.inverse(params, state, jnp.zeros(3), train=True)


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
