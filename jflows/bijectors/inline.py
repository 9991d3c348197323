"""A bijector made from user functions, with the log-det by autodiff when it is not given."""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jflows.bijectors.base import EMPTY, Bijector, batch_shape_of, check_event_rank


def autodiff_log_det(fn: Callable, x: jax.Array, event_ndims: int) -> jax.Array:
    """``log|det d fn / dx|`` per event, by forward-mode autodiff.

    * ``event_ndims == 0``: ``fn`` must act elementwise; its derivative is one JVP with a
      tangent of ones, so the cost is one extra forward pass.
    * ``event_ndims >= 1``: ``fn`` is applied to single events (no batch axes); the dense
      ``D x D`` Jacobian of each flattened event (``D`` its size) is built with
      :func:`jax.jacfwd` and its log-abs-determinant taken with ``slogdet``, vmapped over
      the batch. This costs ``D`` forward passes per event: use it for small events.
    """
    if event_ndims == 0:
        _, derivative = jax.jvp(fn, (x,), (jnp.ones_like(x),))
        return jnp.log(jnp.abs(derivative))
    event_shape = tuple(x.shape[x.ndim - event_ndims :])
    size = math.prod(event_shape)

    def one_event(flat):
        jac = jax.jacfwd(lambda v: fn(v.reshape(event_shape)).reshape(size))(flat)
        return jnp.linalg.slogdet(jac)[1]

    batch_shape = batch_shape_of(x, event_ndims)
    flat = x.reshape((-1, size))
    return jax.vmap(one_event)(flat).reshape(batch_shape)


def inline(
    forward: Callable,
    inverse: Callable,
    forward_log_det: Callable | None = None,
    inverse_log_det: Callable | None = None,
    *,
    event_ndims: int = 0,
    init: Callable | None = None,
) -> Bijector:
    """A bijector from user functions (TFP: ``tfb.Inline``).

    Without ``init`` the functions take the input only: ``forward(x) -> y``,
    ``inverse(y) -> x``, ``forward_log_det(x)``, ``inverse_log_det(y)``. With
    ``init(key, x) -> params`` they take the params first: ``forward(params, x)`` etc.

    The log-dets return one value per event (the batch shape) for ``event_ndims >= 1``, and
    per element (or any shape broadcastable to the input) for ``event_ndims == 0``.
    When ``forward_log_det`` is missing it is computed by autodiff
    (:func:`autodiff_log_det`: one JVP for ``event_ndims == 0``, where the function must
    be elementwise; a dense Jacobian per event otherwise). When ``inverse_log_det`` is
    missing it is ``-forward_log_det(inverse(y))``.
    """
    has_params = init is not None

    def bind(fn, params):
        if fn is None:
            return None
        return (lambda v: fn(params, v)) if has_params else fn

    def log_det_of(fn, log_det_fn, params, x):
        if log_det_fn is not None:
            value = log_det_fn(params, x) if has_params else log_det_fn(x)
        else:
            value = autodiff_log_det(bind(fn, params), x, event_ndims)
        if event_ndims == 0:
            value = jnp.broadcast_to(value, x.shape)
        return value

    def _init(key, x):
        check_event_rank(x, event_ndims, "inline")
        return (init(key, x) if has_params else EMPTY), EMPTY

    def _forward(params, state, x, *, cond=None, train=False, key=None):
        del cond, train, key
        check_event_rank(x, event_ndims, "inline")
        y = bind(forward, params)(x)
        return y, log_det_of(forward, forward_log_det, params, x), state

    def _inverse(params, state, y, *, cond=None, train=False, key=None):
        del cond, train, key
        check_event_rank(y, event_ndims, "inline")
        x = bind(inverse, params)(y)
        if inverse_log_det is not None:
            log_det = inverse_log_det(params, y) if has_params else inverse_log_det(y)
            if event_ndims == 0:
                log_det = jnp.broadcast_to(log_det, y.shape)
        else:
            log_det = -log_det_of(forward, forward_log_det, params, x)
        return x, log_det, state

    return Bijector(_init, _forward, _inverse, event_ndims)
