"""Rational-quadratic splines with linear tails (Durkan et al. 2019, Neural Spline Flows).

A monotone spline of ``n`` bins maps ``[-B, B]`` onto itself through the knots
``(x_k, y_k)``, ``k = 0..n`` (``x_0 = y_0 = -B``, ``x_n = y_n = B``), with positive
derivatives ``d_k`` at the knots; outside ``[-B, B]`` it is the identity (``d_0 = d_n = 1``,
so the map and its derivative are continuous at ``±B``). In bin ``k``, with
``w = x_{k+1} - x_k``, ``h = y_{k+1} - y_k``, ``s = h / w`` and ``xi = (x - x_k) / w`` in
``[0, 1]`` (the paper's Eq. 4 and its derivative)::

    y = y_k + h (s xi^2 + d_k xi (1 - xi)) / den,   den = s + (d_{k+1} + d_k - 2 s) xi (1 - xi)
    dy/dx = s^2 (d_{k+1} xi^2 + 2 s xi (1 - xi) + d_k (1 - xi)^2) / den^2

The inverse solves the quadratic ``a xi^2 + b xi + c = 0`` in the bin of ``y`` (found on
the ``y`` knots), with ``dy = y - y_k``::

    a = h (s - d_k) + dy (d_{k+1} + d_k - 2 s),  b = h d_k - dy (d_{k+1} + d_k - 2 s),
    c = -s dy,   xi = 2 c / (-b - sqrt(b^2 - 4 a c))

(the root in ``[0, 1]``, in the form without cancellation; the paper's Eq. 29), and
``log|dx/dy| = -log|dy/dx|`` at that ``xi``.

**Parameters.** :func:`spline_knots` maps ``K = 3 n - 1`` unconstrained numbers per
dimension, ``theta = [widths (n), heights (n), derivatives (n - 1)]`` (nflows' and
FlowJAX's layout), to the knots::

    w = min_w + (1 - n min_w) softmax(theta_w),   x_k = -B + 2 B sum_{j<k} w_j
    h = min_h + (1 - n min_h) softmax(theta_h),   y_k = -B + 2 B sum_{j<k} h_j
    d_k = min_d + softplus(theta_d + log(expm1(1 - min_d)))      (interior k = 1..n-1)

so every bin is at least ``2 B min_w`` wide and ``2 B min_h`` high, every derivative at
least ``min_d``, and ``theta = 0`` is the identity (equal bins, derivatives 1: distrax's
offset). The end knots are set to exactly ``±B``.

**Edges.** Inputs exactly on a knot fall in the bin to their right (the last knot ``B``
in the last bin); the discriminant is clipped to ``>= 0`` against rounding; tail inputs
(any size, e.g. ``±1e4``) are replaced by 0 in the spline branch, so they give the
identity with finite gradients. Nothing on the input's path is clipped, so autodiff's
derivative at a knot or at ``±B`` is the one-sided derivative of the bin used, not half of
it (a ``clip`` at a tie halves it).

Three ways to use it: :func:`spline_transformer` is the per-dimension
:class:`jflows.nets.autoregressive.Transformer` for
:func:`jflows.bijectors.masked_autoregressive` (NSF-autoregressive) and for the coupling
bijectors of :mod:`jflows.bijectors.coupling` (NSF-coupling);
:func:`rational_quadratic_spline` is an elementwise bijector with learnable knots.
Agrees with TFP's ``tfb.RationalQuadraticSpline`` (explicit bin widths / heights / knot
slopes, ``range_min = -B``) and distrax's ``RationalQuadraticSpline(...,
boundary_slopes='identity')`` on the same knots (``tests/bijectors/test_spline.py``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jflows.bijectors.base import Bijector, check_event_rank, sum_rightmost
from jflows.nets.autoregressive import Transformer

Array = jax.Array


class SplineKnots(NamedTuple):
    """The knots of a batch of splines: ``x``, ``y`` and derivatives ``d``, each of shape
    ``batch + (n + 1,)`` (increasing ``x`` and ``y`` from ``-B`` to ``B``, ``d > 0``)."""

    x: Array
    y: Array
    d: Array


def _positions(raw: Array, bound: float, minimum: float) -> Array:
    """Knot positions ``-B .. B`` from unconstrained bin sizes (see the module docstring)."""
    n = raw.shape[-1]
    sizes = minimum + (1.0 - n * minimum) * jax.nn.softmax(raw, axis=-1)
    inner = -bound + 2.0 * bound * jnp.cumsum(sizes[..., :-1], axis=-1)
    ends = jnp.ones(raw.shape[:-1] + (1,), raw.dtype) * bound
    return jnp.concatenate([-ends, inner, ends], axis=-1)


def spline_knots(theta: Array, *, bound: float, min_bin_width: float, min_bin_height: float,
                 min_derivative: float) -> SplineKnots:
    """The knots of the splines with unconstrained parameters ``theta`` (``batch + (3n-1,)``)."""
    k = theta.shape[-1]
    if k < 2 or (k + 1) % 3:
        raise ValueError(f"spline_knots: expected 3 * num_bins - 1 parameters on the last "
                         f"axis (widths, heights, interior derivatives), got shape "
                         f"{tuple(theta.shape)}.")
    n = (k + 1) // 3
    offset = math.log(math.expm1(1.0 - min_derivative))
    interior = min_derivative + jax.nn.softplus(theta[..., 2 * n:] + offset)
    ones = jnp.ones(theta.shape[:-1] + (1,), theta.dtype)
    return SplineKnots(_positions(theta[..., :n], bound, min_bin_width),
                       _positions(theta[..., n:2 * n], bound, min_bin_height),
                       jnp.concatenate([ones, interior, ones], axis=-1))


def _bin(knots: SplineKnots, on: Array, v: Array):
    """``(x_k, w, y_k, h, d_k, d_{k+1})`` of the bin of ``v`` on the knot positions ``on``."""
    index = jnp.sum(v[..., None] >= on[..., 1:-1], axis=-1, keepdims=True)

    def at(a, shift=0):
        return jnp.take_along_axis(a, index + shift, axis=-1)[..., 0]

    x_k, y_k = at(knots.x), at(knots.y)
    return x_k, at(knots.x, 1) - x_k, y_k, at(knots.y, 1) - y_k, at(knots.d), at(knots.d, 1)


def _log_slope(xi, s, d_k, d_k1):
    """``log dy/dx`` in a bin at ``xi`` (see the module docstring)."""
    t = xi * (1.0 - xi)
    den = s + (d_k1 + d_k - 2.0 * s) * t
    num = d_k1 * jnp.square(xi) + 2.0 * s * t + d_k * jnp.square(1.0 - xi)
    return 2.0 * jnp.log(s) + jnp.log(num) - 2.0 * jnp.log(den)


def _bound(knots: SplineKnots) -> Array:
    return knots.x[..., -1]


def _aligned(knots: SplineKnots, v: Array) -> tuple[SplineKnots, Array]:
    """The knots and ``v`` in one dtype, broadcast to their common batch shape."""
    dtype = jnp.result_type(knots.x, v)
    batch = jnp.broadcast_shapes(knots.x.shape[:-1], v.shape)
    knots = SplineKnots(*(jnp.broadcast_to(a.astype(dtype), batch + a.shape[-1:])
                          for a in knots))
    return knots, jnp.broadcast_to(v.astype(dtype), batch)


def spline_forward(knots: SplineKnots, x: Array) -> tuple[Array, Array]:
    """``(y, log|dy/dx|)`` elementwise, identity outside ``[-B, B]``; ``x`` and the knots'
    batch shape broadcast (the results have the broadcast shape)."""
    knots, x = _aligned(knots, x)
    bound = _bound(knots)
    inside = jnp.abs(x) <= bound
    v = jnp.where(inside, x, 0.0)
    x_k, w, y_k, h, d_k, d_k1 = _bin(knots, knots.x, v)
    s = h / w
    xi = (v - x_k) / w
    t = xi * (1.0 - xi)
    y = y_k + h * (s * jnp.square(xi) + d_k * t) / (s + (d_k1 + d_k - 2.0 * s) * t)
    log_det = _log_slope(xi, s, d_k, d_k1)
    return jnp.where(inside, y, x), jnp.where(inside, log_det, 0.0)


def spline_inverse(knots: SplineKnots, y: Array) -> tuple[Array, Array]:
    """``(x, log|dx/dy|)`` of the inverse, elementwise, identity outside ``[-B, B]``."""
    knots, y = _aligned(knots, y)
    bound = _bound(knots)
    inside = jnp.abs(y) <= bound
    v = jnp.where(inside, y, 0.0)
    x_k, w, y_k, h, d_k, d_k1 = _bin(knots, knots.y, v)
    s = h / w
    dy = v - y_k
    slopes = d_k1 + d_k - 2.0 * s
    a = h * (s - d_k) + dy * slopes
    b = h * d_k - dy * slopes
    c = -s * dy
    root = jnp.sqrt(jnp.maximum(jnp.square(b) - 4.0 * a * c, 0.0))
    xi = 2.0 * c / (-b - root)
    x = x_k + xi * w
    log_det = -_log_slope(xi, s, d_k, d_k1)
    return jnp.where(inside, x, y), jnp.where(inside, log_det, 0.0)


def _check_options(num_bins, bound, min_bin_width, min_bin_height, min_derivative, name):
    if not isinstance(num_bins, int) or num_bins < 1:
        raise ValueError(f"{name}: num_bins must be an int >= 1, got {num_bins!r}.")
    if not bound > 0:
        raise ValueError(f"{name}: bound must be > 0 (the spline acts on [-bound, bound]), "
                         f"got {bound}.")
    for what, value in (("min_bin_width", min_bin_width), ("min_bin_height", min_bin_height)):
        if not 0 <= value * num_bins < 1:
            raise ValueError(f"{name}: {what} must be >= 0 with {what} * num_bins < 1 (a "
                             f"fraction of the interval per bin), got {value} with "
                             f"num_bins={num_bins}.")
    if not 0 <= min_derivative < 1:
        raise ValueError(f"{name}: min_derivative must be in [0, 1) (derivatives start at "
                         f"1), got {min_derivative}.")


def spline_transformer(num_bins: int = 8, bound: float = 3.0, *, min_bin_width: float = 1e-3,
                       min_bin_height: float = 1e-3, min_derivative: float = 1e-3
                       ) -> Transformer:
    """The spline as a per-dimension :class:`jflows.nets.autoregressive.Transformer` with
    ``K = 3 num_bins - 1`` unconstrained parameters (see the module docstring); ``theta =
    0`` is the identity. ``min_bin_width`` / ``min_bin_height`` are fractions of the
    interval ``[-bound, bound]`` (nflows' convention)."""
    _check_options(num_bins, bound, min_bin_width, min_bin_height, min_derivative,
                   "spline_transformer")
    options = dict(bound=float(bound), min_bin_width=min_bin_width,
                   min_bin_height=min_bin_height, min_derivative=min_derivative)

    # Jitted (inlined under an outer jit): eager calls compile once instead of per op.
    @jax.jit
    def forward(theta, u):
        return spline_forward(spline_knots(theta, **options), u)

    @jax.jit
    def inverse(theta, x):
        return spline_inverse(spline_knots(theta, **options), x)

    return Transformer(3 * num_bins - 1, forward, inverse)


def rational_quadratic_spline(num_bins: int = 8, bound: float = 3.0, *,
                              min_bin_width: float = 1e-3, min_bin_height: float = 1e-3,
                              min_derivative: float = 1e-3, param_shape=(),
                              event_ndims: int = 0) -> Bijector:
    """An elementwise spline bijector with learnable knots.

    Params ``{'theta': param_shape + (3 num_bins - 1,)}``, initialised at 0 (the identity);
    ``param_shape`` must broadcast to the trailing axes of the input (``()``: one spline for
    every element). ``log|det J|`` is the sum of ``log|dy_i/dx_i|`` over the last
    ``event_ndims`` axes. TFP: ``tfb.RationalQuadraticSpline`` (its knots given explicitly).
    """
    name = "rational_quadratic_spline"
    transformer = spline_transformer(num_bins, bound, min_bin_width=min_bin_width,
                                     min_bin_height=min_bin_height,
                                     min_derivative=min_derivative)
    param_shape = tuple(param_shape)

    def init(key, x):
        del key
        check_event_rank(x, event_ndims, name)
        theta = jnp.zeros(param_shape + (transformer.params_per_dim,), x.dtype)
        return {"theta": theta}, ()

    def theta_for(params, x, direction):
        check_event_rank(x, event_ndims, f"{name}.{direction}")
        theta = params["theta"]
        shape = tuple(theta.shape[:-1])
        try:
            fits = jnp.broadcast_shapes(shape, tuple(x.shape)) == tuple(x.shape)
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"{name}.{direction}: the spline parameters of shape {shape} "
                             f"(+ {transformer.params_per_dim} per element) do not broadcast "
                             f"to the input of shape {tuple(x.shape)}; its trailing axes must "
                             f"match param_shape.")
        return theta

    def forward(params, state, x, *, cond=None, train=False, key=None):
        del cond, train, key
        y, log_det = transformer.forward(theta_for(params, x, "forward"), x)
        return y, sum_rightmost(log_det, event_ndims), state

    def inverse(params, state, y, *, cond=None, train=False, key=None):
        del cond, train, key
        x, log_det = transformer.inverse(theta_for(params, y, "inverse"), y)
        return x, sum_rightmost(log_det, event_ndims), state

    return Bijector(init, forward, inverse, event_ndims)
