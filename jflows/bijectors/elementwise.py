"""Elementwise bijectors: the scalar functions of TFP's catalogue, on any event shape.

Every bijector here applies a scalar function ``f`` to each element. The log-det of one
event is the sum of ``log|f'(x_i)|`` over its ``event_ndims`` trailing axes (default 0:
every element is its own event and ``log_det`` has the input's shape).

Parameters are either *fixed constants* given to the constructor (then ``init`` returns
empty params) or *learnable*, when the constant is left out: ``init`` then returns a dict
with an unconstrained parameter of shape ``param_shape`` (default scalar), which must
broadcast against the input. Positive quantities are learned in log space
(``log_scale``, ``log_slope``) so that any optimizer step keeps the map invertible.

Out-of-domain inputs (e.g. ``sigmoid`` inverse outside ``(low, high)``) are not checked by
default and give ``nan``/``inf`` as the underlying ``jax.numpy`` function does. With
``validate_args=True`` the domain is checked with :mod:`jax.experimental.checkify`:
eagerly a violation raises; under ``jit`` wrap the function with ``checkify.checkify``
and call ``err.throw()`` (a staged check that is not functionalized fails at trace time
with JAX's message saying so).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify
from jax.scipy.special import ndtr, ndtri

from jflows.bijectors.base import EMPTY, Bijector, check_event_rank, sum_broadcast_event

ElementFn = Callable[[Mapping[str, jax.Array], jax.Array], jax.Array]
DomainCheck = Callable[[Mapping[str, jax.Array], jax.Array], jax.Array]

_HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)


def _zeros(shape, dtype):
    return jnp.zeros(shape, dtype)


def _constant_init(value: float) -> Callable[[tuple, Any], jax.Array]:
    return lambda shape, dtype: jnp.full(shape, value, dtype)


def elementwise(
    name: str,
    forward_fn: ElementFn,
    inverse_fn: ElementFn,
    forward_log_det_fn: ElementFn,
    inverse_log_det_fn: ElementFn | None = None,
    *,
    constants: Mapping[str, Any] | None = None,
    learnable: Mapping[str, Callable[[tuple, Any], jax.Array]] | None = None,
    param_shape: tuple[int, ...] = (),
    event_ndims: int = 0,
    inverse_domain: tuple[DomainCheck, str] | None = None,
    validate_args: bool = False,
) -> Bijector:
    """Build an elementwise bijector from scalar math written once.

    Args:
      name: used in error messages.
      forward_fn, inverse_fn: ``(p, x) -> y`` and ``(p, y) -> x``, where ``p`` maps
        parameter names to arrays (the constants and the learnable params together).
      forward_log_det_fn: ``(p, x) -> log|dy/dx|`` elementwise.
      inverse_log_det_fn: ``(p, y) -> log|dx/dy|`` elementwise; when omitted it is
        ``-forward_log_det_fn(p, inverse_fn(p, y))``. Give it when a direct formula is
        more accurate near the domain's edges.
      constants: fixed parameter values (Python or array), stored in the closure.
      learnable: ``name -> init(shape, dtype)`` for parameters that ``init`` creates.
      param_shape: shape of each learnable parameter; must broadcast to the input shape.
      event_ndims: trailing axes summed into one event's log-det.
      inverse_domain: ``(predicate(p, y) -> bool array, description)`` checked on the
        inverse's input when ``validate_args`` is true.
    """
    constants = dict(constants or {})
    learnable = dict(learnable or {})
    param_shape = tuple(param_shape)

    def _params(params, x):
        check_event_rank(x, event_ndims, name)
        p = {k: jnp.asarray(v, dtype=x.dtype) for k, v in constants.items()}
        p.update({k: jnp.asarray(v) for k, v in params.items()} if learnable else {})
        for k, v in p.items():
            try:
                fits = jnp.broadcast_shapes(v.shape, x.shape) == tuple(x.shape)
            except ValueError:
                fits = False
            if not fits:
                raise ValueError(
                    f"{name}: parameter '{k}' of shape {tuple(v.shape)} does not broadcast "
                    f"to the input of shape {tuple(x.shape)}; the input's trailing axes must "
                    f"match the parameter shape given at construction/init."
                )
        return p

    def _reduce(log_det, x):
        return sum_broadcast_event(log_det, x.shape, event_ndims)

    def init(key, x):
        del key
        if not learnable:
            return EMPTY, EMPTY
        check_event_rank(x, event_ndims, name)
        return {k: fn(param_shape, x.dtype) for k, fn in learnable.items()}, EMPTY

    def forward(params, state, x, *, cond=None, train=False, key=None):
        del cond, train, key
        p = _params(params, x)
        return forward_fn(p, x), _reduce(forward_log_det_fn(p, x), x), state

    def inverse(params, state, y, *, cond=None, train=False, key=None):
        del cond, train, key
        p = _params(params, y)
        if validate_args and inverse_domain is not None:
            predicate, description = inverse_domain
            checkify.check(
                jnp.all(predicate(p, y)),
                f"{name}: inverse expects inputs {description}; got values outside it",
            )
        x = inverse_fn(p, y)
        if inverse_log_det_fn is None:
            log_det = -forward_log_det_fn(p, x)
        else:
            log_det = inverse_log_det_fn(p, y)
        return x, _reduce(log_det, y), state

    return Bijector(init, forward, inverse, event_ndims)


# --------------------------------------------------------------------------------------
# Shift and scale.
# --------------------------------------------------------------------------------------


def _scale_of(p):
    return p["scale"] if "scale" in p else jnp.exp(p["log_scale"])


def _log_abs_scale(p):
    return jnp.log(jnp.abs(p["scale"])) if "scale" in p else p["log_scale"]


def shift(shift=None, *, param_shape=(), event_ndims: int = 0) -> Bijector:
    """``y = x + b``; ``log|det J| = 0``. TFP: ``tfb.Shift(b)``.

    With ``shift=None`` the shift is a learnable parameter ``{'shift'}`` initialised at 0.
    """
    return elementwise(
        "shift",
        lambda p, x: x + p["shift"],
        lambda p, y: y - p["shift"],
        lambda p, x: jnp.zeros((), x.dtype),
        lambda p, y: jnp.zeros((), y.dtype),
        constants={} if shift is None else {"shift": shift},
        learnable={"shift": _zeros} if shift is None else {},
        param_shape=param_shape,
        event_ndims=event_ndims,
    )


def scale(scale=None, *, param_shape=(), event_ndims: int = 0) -> Bijector:
    """``y = s * x``; ``log|det J| = sum log|s|``. TFP: ``tfb.Scale(s)``.

    A fixed ``scale`` may be negative (any non-zero value). With ``scale=None`` it is
    learned as ``s = exp(log_scale)`` (params ``{'log_scale'}``, initialised at 0, i.e.
    the identity), matching ``tfb.Scale(log_scale=...)``.
    """
    return elementwise(
        "scale",
        lambda p, x: _scale_of(p) * x,
        lambda p, y: y / _scale_of(p),
        lambda p, x: _log_abs_scale(p),
        constants={} if scale is None else {"scale": scale},
        learnable={"log_scale": _zeros} if scale is None else {},
        param_shape=param_shape,
        event_ndims=event_ndims,
    )


def affine_scalar(shift=None, scale=None, *, param_shape=(), event_ndims: int = 0) -> Bijector:
    """``y = s * x + b``; ``log|det J| = sum log|s|``.

    TFP: ``tfb.Chain([tfb.Shift(b), tfb.Scale(s)])`` (TFP's deprecated ``AffineScalar``).
    Each of ``shift`` and ``scale`` left as ``None`` is learnable (``'shift'`` at 0,
    ``'log_scale'`` at 0), so ``affine_scalar()`` starts as the identity.
    """
    constants, learnable = {}, {}
    for key, value, learned_name in (("shift", shift, "shift"), ("scale", scale, "log_scale")):
        if value is None:
            learnable[learned_name] = _zeros
        else:
            constants[key] = value
    return elementwise(
        "affine_scalar",
        lambda p, x: _scale_of(p) * x + p["shift"],
        lambda p, y: (y - p["shift"]) / _scale_of(p),
        lambda p, x: _log_abs_scale(p),
        constants=constants,
        learnable=learnable,
        param_shape=param_shape,
        event_ndims=event_ndims,
    )


# --------------------------------------------------------------------------------------
# Squashing functions.
# --------------------------------------------------------------------------------------


def _normal_log_pdf(x):
    return -0.5 * jnp.square(x) - _HALF_LOG_TWO_PI


def normal_cdf(*, event_ndims: int = 0, validate_args: bool = False) -> Bijector:
    """``y = Phi(x)``, the standard normal CDF; ``log|dy/dx| = log phi(x) = -x^2/2 - log(2 pi)/2``.

    Inverse ``x = Phi^{-1}(y)`` (``ndtri``) on ``(0, 1)``. TFP: ``tfb.NormalCDF()``.
    """
    return elementwise(
        "normal_cdf",
        lambda p, x: ndtr(x),
        lambda p, y: ndtri(y),
        lambda p, x: _normal_log_pdf(x),
        event_ndims=event_ndims,
        inverse_domain=(lambda p, y: (y > 0) & (y < 1), "in the open interval (0, 1)"),
        validate_args=validate_args,
    )


def sigmoid(low=None, high=None, *, event_ndims: int = 0, validate_args: bool = False) -> Bijector:
    """``y = low + (high - low) * sigmoid(x)`` (default ``low=0, high=1``).

    With ``w = high - low`` and ``s = sigmoid(-|x|)`` (in ``(0, 1/2]``, accurate however
    small), the forward is evaluated from the nearer edge: ``y = low + w s`` for ``x < 0``
    and ``y = high - w s`` for ``x >= 0``, so that ``y`` can land on a value one float step
    inside either edge rather than rounding onto it. ``log|dy/dx| = log w - softplus(-x) -
    softplus(x)``. The inverse and its log-det are taken from the distances to the edges,
    formed in the data space (``y - low`` and ``high - y`` are exact for ``y`` near that
    edge, whereas ``z = (y - low)/w`` rounds to 1 one float step below ``high``):

        x = log(y - low) - log(high - y),
        log|dx/dy| = log w - log(y - low) - log(high - y),

    which on the default ``(0, 1)`` are ``log y - log1p(-y)`` and ``-log y - log1p(-y)``.
    TFP: ``tfb.Sigmoid(low, high)``.
    """
    if (low is None) != (high is None):
        raise ValueError(f"sigmoid: give both low and high or neither; got low={low}, high={high}.")
    concrete = not any(isinstance(v, jax.core.Tracer) for v in (low, high))
    if low is not None and concrete and np.any(np.asarray(high) <= np.asarray(low)):
        raise ValueError(f"sigmoid: need high > low everywhere, got low={low}, high={high}.")
    # On the default (0, 1) the affine terms are left out rather than computed as
    # log(1 - 0) = 0: XLA materialises such a zero as a full-size array.
    unit_interval = low is None

    def forward(p, x):
        s = jax.nn.sigmoid(-jnp.abs(x))
        if unit_interval:
            return jnp.where(x < 0, s, 1.0 - s)
        width = p["high"] - p["low"]
        return jnp.where(x < 0, p["low"] + width * s, p["high"] - width * s)

    def log_width(p):
        return 0.0 if unit_interval else jnp.log(p["high"] - p["low"])

    def log_distances(p, y):
        """``(log(y - low), log(high - y))``."""
        if unit_interval:
            return jnp.log(y), jnp.log1p(-y)
        return jnp.log(y - p["low"]), jnp.log(p["high"] - y)

    def inverse(p, y):
        log_above_low, log_below_high = log_distances(p, y)
        return log_above_low - log_below_high

    def inverse_log_det(p, y):
        log_above_low, log_below_high = log_distances(p, y)
        return log_width(p) - log_above_low - log_below_high

    def in_domain(p, y):
        if unit_interval:
            return (y > 0) & (y < 1)
        return (y > p["low"]) & (y < p["high"])

    return elementwise(
        "sigmoid",
        forward,
        inverse,
        lambda p, x: -jax.nn.softplus(-x) - jax.nn.softplus(x) + log_width(p),
        inverse_log_det,
        constants={} if unit_interval else {"low": low, "high": high},
        event_ndims=event_ndims,
        inverse_domain=(in_domain, "strictly between low and high"),
        validate_args=validate_args,
    )


def tanh(*, event_ndims: int = 0, validate_args: bool = False) -> Bijector:
    """``y = tanh(x)``; ``log|dy/dx| = 2 (log 2 - x - softplus(-2x))`` (stable for large |x|).

    Inverse ``atanh`` on ``(-1, 1)`` with ``log|dx/dy| = -log1p(-y^2)``. TFP: ``tfb.Tanh()``.
    """
    return elementwise(
        "tanh",
        lambda p, x: jnp.tanh(x),
        lambda p, y: jnp.arctanh(y),
        lambda p, x: 2.0 * (math.log(2.0) - x - jax.nn.softplus(-2.0 * x)),
        lambda p, y: -jnp.log1p(-jnp.square(y)),
        event_ndims=event_ndims,
        inverse_domain=(lambda p, y: jnp.abs(y) < 1, "in the open interval (-1, 1)"),
        validate_args=validate_args,
    )


def exp(*, event_ndims: int = 0, validate_args: bool = False) -> Bijector:
    """``y = exp(x)``; ``log|dy/dx| = x``; inverse ``log y`` with ``-log y``. TFP: ``tfb.Exp()``."""
    return elementwise(
        "exp",
        lambda p, x: jnp.exp(x),
        lambda p, y: jnp.log(y),
        lambda p, x: x,
        lambda p, y: -jnp.log(y),
        event_ndims=event_ndims,
        inverse_domain=(lambda p, y: y > 0, "strictly positive"),
        validate_args=validate_args,
    )


def softplus(
    hinge_softness=None, low=None, *, event_ndims: int = 0, validate_args: bool = False
) -> Bijector:
    """``y = c * softplus(x / c) + low`` (defaults ``c = 1``, ``low = 0``).

    ``log|dy/dx| = log sigmoid(x/c) = -softplus(-x/c)``. The inverse, with
    ``z = (y - low)/c``, is ``x = c (z + log(-expm1(-z)))`` and
    ``log|dx/dy| = -log(-expm1(-z))``. TFP: ``tfb.Softplus(hinge_softness, low)``.
    """
    c = 1.0 if hinge_softness is None else hinge_softness
    low = 0.0 if low is None else low

    def unit(p, y):
        return (y - p["low"]) / p["c"]

    return elementwise(
        "softplus",
        lambda p, x: p["c"] * jax.nn.softplus(x / p["c"]) + p["low"],
        lambda p, y: p["c"] * (unit(p, y) + jnp.log(-jnp.expm1(-unit(p, y)))),
        lambda p, x: -jax.nn.softplus(-x / p["c"]),
        lambda p, y: -jnp.log(-jnp.expm1(-unit(p, y))),
        constants={"c": c, "low": low},
        event_ndims=event_ndims,
        inverse_domain=(lambda p, y: y > p["low"], "strictly greater than low"),
        validate_args=validate_args,
    )


def leaky_relu(
    slope=None, *, init_slope: float = 0.5, param_shape=(), event_ndims: int = 0
) -> Bijector:
    """``y = x`` for ``x >= 0`` and ``y = a x`` otherwise, with slope ``a > 0``.

    ``log|dy/dx| = 0`` for ``x >= 0`` and ``log a`` otherwise. With ``slope=None`` the
    slope is learnable as ``a = exp(log_slope)`` (params ``{'log_slope'}``, starting at
    ``init_slope``). TFP has no leaky-ReLU bijector; the seed workflows defined one by
    subclassing ``tfb.Bijector`` with exactly this math.
    """
    if slope is not None and not bool(jnp.all(jnp.asarray(slope) > 0)):
        raise ValueError(f"leaky_relu: slope must be > 0 to be invertible, got {slope}.")
    if init_slope <= 0:
        raise ValueError(f"leaky_relu: init_slope must be > 0, got {init_slope}.")

    def log_slope(p):
        return jnp.log(p["slope"]) if "slope" in p else p["log_slope"]

    return elementwise(
        "leaky_relu",
        lambda p, x: jnp.where(x >= 0, x, jnp.exp(log_slope(p)) * x),
        lambda p, y: jnp.where(y >= 0, y, y * jnp.exp(-log_slope(p))),
        # A 0/1 mask times the slope: jnp.where(x >= 0, 0.0, ...) materialises a zeros array.
        lambda p, x: (x < 0).astype(x.dtype) * log_slope(p),
        lambda p, y: (y < 0).astype(y.dtype) * -log_slope(p),
        constants={} if slope is None else {"slope": slope},
        learnable={"log_slope": _constant_init(math.log(init_slope))} if slope is None else {},
        param_shape=param_shape,
        event_ndims=event_ndims,
    )


def identity(*, event_ndims: int = 0) -> Bijector:
    """``y = x``; ``log|det J| = 0``. TFP: ``tfb.Identity()``."""
    return elementwise(
        "identity",
        lambda p, x: x,
        lambda p, y: y,
        lambda p, x: jnp.zeros((), x.dtype),
        lambda p, y: jnp.zeros((), y.dtype),
        event_ndims=event_ndims,
    )
