"""Rational-quadratic spline: TFP / distrax agreement on the same knots, the
parametrisation, edges (knots, +-B, far tails) in float32 and float64, and its use as the
MAF transformer (sampling through the incremental MADE solve)."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_probability.substrates.jax as tfp

import jflows.bijectors as jb
from jflows.bijectors.spline import (
    SplineKnots,
    rational_quadratic_spline,
    spline_forward,
    spline_inverse,
    spline_knots,
    spline_transformer,
)
from jflows.nets import MADE

tfb = tfp.bijectors
N, B = 5, 2.5
OPTIONS = dict(bound=B, min_bin_width=1e-3, min_bin_height=1e-3, min_derivative=1e-3)


def _theta(shape, seed=0, scale=1.5, dtype=jnp.float64):
    return scale * jax.random.normal(jax.random.key(seed), shape + (3 * N - 1,), dtype)


def _inputs(knots, dtype):
    """Random points in and around [-B, B], every knot, +-B and the far tails (per spline)."""
    rand = jax.random.uniform(jax.random.key(3), knots.x.shape[:-1] + (7,), dtype, -B - 1, B + 1)
    far = jnp.broadcast_to(jnp.array([-1e4, -B, B, 1e4], dtype), knots.x.shape[:-1] + (4,))
    return jnp.concatenate([rand, knots.x.astype(dtype), far], axis=-1)


def _per_point(knots, extra):
    """The knots repeated for ``extra`` points per spline (as an extra batch axis)."""
    return SplineKnots(*(jnp.repeat(a[..., None, :], extra, axis=-2) for a in knots))


def test_tfp_agreement_on_explicit_knots():
    with jax.enable_x64(True):
        raw = jax.random.normal(jax.random.key(1), (3, 2 * N + N - 1), jnp.float64)
        widths = 2 * B * jax.nn.softmax(raw[:, :N])
        heights = 2 * B * jax.nn.softmax(raw[:, N:2 * N])
        slopes = jnp.exp(raw[:, 2 * N:])
        knots = SplineKnots(
            jnp.concatenate([jnp.full((3, 1), -B), -B + jnp.cumsum(widths, -1)], -1),
            jnp.concatenate([jnp.full((3, 1), -B), -B + jnp.cumsum(heights, -1)], -1),
            jnp.pad(slopes, ((0, 0), (1, 1)), constant_values=1.0))
        x = _inputs(knots, jnp.float64)
        ref = tfb.RationalQuadraticSpline(widths[:, None], heights[:, None], slopes[:, None],
                                          range_min=-B)
        many = _per_point(knots, x.shape[-1])
        y, log_det = spline_forward(many, x)
        np.testing.assert_allclose(y, ref.forward(x), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(log_det, ref.forward_log_det_jacobian(x, 0), atol=1e-9)
        back, inv_log_det = spline_inverse(many, y)
        np.testing.assert_allclose(back, ref.inverse(y), atol=1e-9)
        np.testing.assert_allclose(inv_log_det, ref.inverse_log_det_jacobian(y, 0), atol=1e-9)


def test_parametrisation_and_values_match_distrax():
    """distrax with the same unconstrained widths/heights/interior slopes (its min bin size is
    absolute: 2 B min_bin_width) builds the same knots and the same map."""
    with jax.enable_x64(True):
        theta = _theta((4,))
        zeros = jnp.zeros((4, 1))
        params = jnp.concatenate([theta[:, :2 * N], zeros, theta[:, 2 * N:], zeros], -1)
        ref = distrax.RationalQuadraticSpline(params[:, None], -B, B, boundary_slopes="identity",
                                              min_bin_size=2 * B * 1e-3, min_knot_slope=1e-3)
        knots = spline_knots(theta, **OPTIONS)
        np.testing.assert_allclose(knots.x, ref.x_pos[:, 0], atol=1e-12)
        np.testing.assert_allclose(knots.y, ref.y_pos[:, 0], atol=1e-12)
        np.testing.assert_allclose(knots.d, ref.knot_slopes[:, 0], atol=1e-12)
        x = _inputs(knots, jnp.float64)
        y, log_det = spline_transformer(N, **OPTIONS).forward(
            jnp.repeat(theta[:, None], x.shape[-1], 1), x)
        ref_y, ref_log_det = ref.forward_and_log_det(x)
        np.testing.assert_allclose(y, ref_y, atol=1e-10)
        np.testing.assert_allclose(log_det, ref_log_det, atol=1e-9)
        ref_x, ref_inv = ref.inverse_and_log_det(y)
        back, inv = spline_transformer(N, **OPTIONS).inverse(
            jnp.repeat(theta[:, None], x.shape[-1], 1), y)
        np.testing.assert_allclose(back, ref_x, atol=1e-9)
        np.testing.assert_allclose(inv, ref_inv, atol=1e-9)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_edges_round_trip_and_finite_gradients(dtype):
    """On every knot (x and y), at +-B and at +-1e4: exact round trip, log-dets equal to
    autodiff's, finite gradients w.r.t. the parameters and the input."""
    with jax.enable_x64(dtype == jnp.float64):
        t = spline_transformer(N, **OPTIONS)
        theta = _theta((3,), dtype=dtype)
        knots = spline_knots(theta, **OPTIONS)
        for direction, on in (("forward", knots.x), ("inverse", knots.y)):
            pts = jnp.concatenate([on, jnp.broadcast_to(jnp.array([-1e4, -B, B, 1e4], dtype),
                                                         (3, 4))], -1)
            th = jnp.repeat(theta[:, None], pts.shape[-1], 1)
            fn = getattr(t, direction)
            out, log_det = fn(th, pts)
            other = t.inverse if direction == "forward" else t.forward
            back, back_log_det = other(th, out)
            tol = 1e-5 if dtype == jnp.float32 else 1e-12
            np.testing.assert_allclose(back, pts, rtol=tol, atol=tol)
            np.testing.assert_allclose(back_log_det, -log_det, atol=100 * tol)
            slope = jax.vmap(jax.vmap(jax.grad(lambda th, p, fn=fn: fn(th, p)[0], 1)))(th, pts)
            np.testing.assert_allclose(jnp.log(slope), log_det, atol=100 * tol)
            grads = jax.grad(lambda th, p, fn=fn: jnp.sum(fn(th, p)[0] + fn(th, p)[1]),
                             (0, 1))(th, pts)
            assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)
            np.testing.assert_array_equal(out[:, -4:][:, [0, 3]], pts[:, -4:][:, [0, 3]])


def test_zero_parameters_are_the_identity():
    t = spline_transformer(N, **OPTIONS)
    x = jnp.linspace(-4.0, 4.0, 17)
    y, log_det = t.forward(jnp.zeros((17, 3 * N - 1)), x)
    np.testing.assert_allclose(y, x, atol=1e-6)
    np.testing.assert_allclose(log_det, 0.0, atol=1e-6)


def test_elementwise_bijector_params_and_event_ndims():
    bij = rational_quadratic_spline(N, B, param_shape=(3,), event_ndims=1)
    params, state = bij.init(jax.random.key(0), jnp.zeros((2, 3)))
    assert params["theta"].shape == (3, 3 * N - 1) and state == ()
    params = {"theta": _theta((3,), dtype=jnp.float32)}
    x = jnp.array([[0.3, -1.0, 5.0], [2.5, 0.0, -0.2]])
    y, log_det, _ = bij.forward(params, state, x)
    ref, ref_log_det = spline_transformer(N, **OPTIONS).forward(
        jnp.broadcast_to(params["theta"], (2, 3, 3 * N - 1)), x)
    np.testing.assert_allclose(y, ref, rtol=1e-6)
    np.testing.assert_allclose(log_det, ref_log_det.sum(-1), rtol=1e-5)


def test_bad_options_and_parameters():
    with pytest.raises(ValueError, match="min_bin_width"):
        spline_transformer(8, min_bin_width=0.2)
    with pytest.raises(ValueError, match="bound"):
        spline_transformer(8, bound=0.0)
    with pytest.raises(ValueError, match="min_derivative"):
        spline_transformer(8, min_derivative=1.0)
    with pytest.raises(ValueError, match="3 \\* num_bins - 1"):
        spline_knots(jnp.zeros((4, 6)), **OPTIONS)


def test_nsf_autoregressive_sampling_through_made_solve():
    """The spline as the MAF transformer: the incremental MADE solve and D passes give the
    same samples, and the density direction inverts them."""
    d, k = 4, 3 * N - 1
    made = MADE(d, (16,), params_per_dim=k, output_init_scale=1.0)
    fast = jb.masked_autoregressive(made, transformer=spline_transformer(N, B))
    slow = jb.masked_autoregressive(made, transformer=spline_transformer(N, B),
                                    sampling="passes")
    params, state = fast.init(jax.random.key(0), jnp.zeros((d,)))
    u = 1.5 * jax.random.normal(jax.random.key(1), (6, d))
    x, log_det, _ = fast.forward(params, state, u)
    x_ref, log_det_ref, _ = slow.forward(params, state, u)
    np.testing.assert_allclose(x, x_ref, atol=1e-5)
    np.testing.assert_allclose(log_det, log_det_ref, atol=1e-4)
    assert float(jnp.max(jnp.abs(x - u))) > 0.1  # not the identity
    back, inv_log_det, _ = fast.inverse(params, state, x)
    np.testing.assert_allclose(back, u, atol=1e-4)
    np.testing.assert_allclose(inv_log_det, -log_det, atol=1e-4)
