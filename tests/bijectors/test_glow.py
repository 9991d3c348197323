"""Glow's pieces against closed forms, TFP-JAX and NumPy; ActNorm's data-dependent init.

The shared checks (round trip, log-det vs float64 jax.jacobian, jit, vmap, transformed)
run on the cases of tests/registry/glow.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tensorflow_probability.substrates import jax as tfp

import jflows.bijectors as jb
from jflows.bijectors.actnorm import actnorm
from jflows.bijectors.conv1x1 import invertible_conv1x1, lu_inverse_weight, lu_weight
from jflows.bijectors.multiscale import factor_out
from jflows.bijectors.squeeze import squeeze
from jflows.testing import perturbed

tfb = tfp.bijectors


def _images(seed=0, shape=(8, 4, 6, 3)):
    """Images whose channels have clearly different means and scales."""
    x = jax.random.normal(jax.random.key(seed), shape)
    c = jnp.arange(shape[-1])
    return x * jnp.array([0.5, 2.0, 7.0])[c % 3] + jnp.array([3.0, -1.0, 10.0])[c % 3]


def _channel_moments(u):
    u = np.asarray(u, np.float64).reshape(-1, u.shape[-1])
    return u.mean(0), u.var(0)


# ----------------------------------------------------------------------------- ActNorm


def test_actnorm_data_init_standardises_the_first_batch():
    b = actnorm()
    x = _images()
    params, state = b.init(jax.random.key(0), x)
    u, log_det, state = b.inverse(params, state, x, train=True)
    mean, var = _channel_moments(u)
    np.testing.assert_allclose(mean, 0.0, atol=1e-5)
    np.testing.assert_allclose(var, 1.0, atol=1e-4)
    assert not bool(state.needs_init)
    # log-det = H W sum_c log s_c with s_c = 1 / std_c of the batch (closed form).
    _, var_x = _channel_moments(x)
    expected = 4 * 6 * np.sum(-0.5 * np.log(var_x + 1e-6))
    np.testing.assert_allclose(log_det, np.full(8, expected), rtol=1e-5)
    # The stored initialisation is used from then on, and a second batch does not move it.
    u_eval = b.inverse(params, state, x)[0]
    np.testing.assert_allclose(u_eval, u, atol=1e-5)
    _, _, again = b.inverse(params, state, _images(seed=1), train=True)
    for new, old in zip(again, state, strict=True):
        np.testing.assert_array_equal(new, old)


def test_actnorm_map_and_log_det_closed_form():
    b = actnorm()
    x = _images()
    params, state = b.init(jax.random.key(0), x)
    params = perturbed(params, jax.random.key(7), 0.3)
    state = state._replace(log_scale=jnp.array([0.2, -0.1, 0.3]), shift=jnp.array([1., 2., 3.]))
    log_scale = np.asarray(params["log_scale"] + state.log_scale)
    shift = np.asarray(params["shift"] + state.shift)
    u, log_det, _ = b.inverse(params, state, x)
    np.testing.assert_allclose(u, (np.asarray(x) + shift) * np.exp(log_scale), rtol=1e-5)
    np.testing.assert_allclose(log_det, np.full(8, 24 * log_scale.sum()), rtol=1e-5)
    y, fwd_log_det, _ = b.forward(params, state, u)
    np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fwd_log_det, -log_det, rtol=1e-6)


def test_actnorm_before_init_is_the_identity_and_forward_never_initialises():
    b = actnorm()
    x = _images()
    params, state = b.init(jax.random.key(0), x)
    np.testing.assert_array_equal(b.inverse(params, state, x)[0], x)
    _, _, after_forward = b.forward(params, state, x, train=True)
    assert bool(after_forward.needs_init)


def test_data_init_runs_layer_by_layer_through_chain_and_scan():
    """Each ActNorm sees the output of the layers nearer the data, already initialised, so
    the layer applied last in the density direction outputs standardised channels."""
    x = _images()
    step = jb.chain(actnorm(), invertible_conv1x1())  # inverse: conv first, then actnorm
    for flow in (jb.chain(step, step), jb.scan(step, 3)):
        params, state = flow.init(jax.random.key(0), x)
        u, _, state = flow.inverse(params, state, x, train=True)
        mean, var = _channel_moments(u)
        np.testing.assert_allclose(mean, 0.0, atol=1e-4)
        np.testing.assert_allclose(var, 1.0, atol=1e-3)
        flags = [s.needs_init for s in jax.tree_util.tree_leaves(
            state, is_leaf=lambda s: hasattr(s, "needs_init")) if hasattr(s, "needs_init")]
        assert flags and not np.any(np.asarray(flags))


def test_actnorm_data_init_of_a_single_vector_is_refused():
    b = actnorm(event_ndims=1)
    params, state = b.init(jax.random.key(0), jnp.zeros((3,)))
    with pytest.raises(ValueError, match="single event of shape"):
        b.inverse(params, state, jnp.zeros((3,)), train=True)


# ----------------------------------------------------------------------------- 1x1 conv


def test_conv1x1_starts_at_a_rotation():
    b = invertible_conv1x1()
    params, state = b.init(jax.random.key(3), jnp.zeros((2, 2, 6)))
    weight, inverse = lu_weight(params, state), lu_inverse_weight(params, state)
    np.testing.assert_allclose(weight @ weight.T, np.eye(6), atol=1e-5)
    np.testing.assert_allclose(inverse, weight.T, atol=1e-5)
    assert sorted(np.asarray(state.permutation).tolist()) == list(range(6))


def test_conv1x1_matches_tfp_scale_matvec_lu_and_slogdet():
    b = invertible_conv1x1()
    x = _images(shape=(2, 3, 5, 3))
    params, state = b.init(jax.random.key(0), x)
    params = perturbed(params, jax.random.key(7), 0.3)
    lower_upper = (jnp.tril(params["lower"], -1) + jnp.triu(params["upper"], 1)
                   + jnp.diag(state.sign * jnp.exp(params["log_scale"])))
    # TFP's `permutation` is the inverse of jflows' index map (W = (L U)[permutation]).
    reference = tfb.ScaleMatvecLU(lower_upper, jnp.argsort(state.permutation))
    y, log_det, _ = b.forward(params, state, x)
    np.testing.assert_allclose(y, reference.forward(x), rtol=1e-5, atol=1e-5)
    per_pixel = jnp.broadcast_to(reference.forward_log_det_jacobian(x, event_ndims=1),
                                 (2, 3, 5))  # TFP returns the constant unbroadcast
    np.testing.assert_allclose(log_det, per_pixel.sum((-1, -2)), rtol=1e-5)
    weight = np.asarray(lu_weight(params, state), np.float64)
    np.testing.assert_allclose(log_det, np.full(2, 15 * np.linalg.slogdet(weight)[1]),
                               rtol=1e-5)
    x_back, inv_log_det, _ = b.inverse(params, state, y)
    np.testing.assert_allclose(x_back, x, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(inv_log_det, -log_det, rtol=1e-6)


# ----------------------------------------------------------------------------- squeeze


def test_squeeze_matches_numpy_and_tfp_reshape_transpose():
    x = np.asarray(_images(shape=(2, 4, 6, 3)))
    y, log_det, _ = squeeze().forward((), (), jnp.asarray(x))
    expected = np.empty((2, 2, 3, 12), np.float32)
    for i, j, c, a, b in np.ndindex(2, 3, 3, 2, 2):
        expected[:, i, j, c * 4 + a * 2 + b] = x[:, 2 * i + a, 2 * j + b, c]
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(log_det, np.zeros(2))
    reference = tfb.Chain([tfb.Reshape((2, 3, 12), (2, 3, 3, 2, 2)), tfb.Transpose([0, 2, 4, 1, 3]),
                           tfb.Reshape((2, 2, 3, 2, 3), (4, 6, 3))])
    np.testing.assert_array_equal(y, reference.forward(x))
    np.testing.assert_array_equal(squeeze().inverse((), (), y)[0], x)


def test_squeeze_refuses_bad_factors_and_sizes():
    with pytest.raises(ValueError, match="factor"):
        squeeze(0)
    with pytest.raises(ValueError, match=r"\(5, 4, 1\)"):
        squeeze().forward((), (), jnp.zeros((5, 4, 1)))


# ----------------------------------------------------------------------------- factor-out


def test_factor_out_passes_half_through_with_the_inner_log_det():
    inner = jb.chain(actnorm(), invertible_conv1x1())
    b = factor_out(inner)
    x = _images(shape=(2, 4, 4, 5))  # odd: ceil(5 / 2) = 3 channels go through inner
    params, state = b.init(jax.random.key(0), x)
    params = perturbed(params, jax.random.key(7), 0.3)
    y, log_det, _ = b.forward(params, state, x)
    np.testing.assert_array_equal(y[..., 3:], x[..., 3:])
    inner_y, inner_log_det, _ = inner.forward(params, state, x[..., :3])
    np.testing.assert_allclose(y[..., :3], inner_y, rtol=1e-6)
    np.testing.assert_allclose(log_det, inner_log_det, rtol=1e-6)


def test_factor_out_refuses_a_shape_changing_inner():
    b = factor_out(squeeze(), event_ndims=3)
    with pytest.raises(ValueError, match="keep its input's shape"):
        b.forward((), (), jnp.zeros((4, 4, 8)))
