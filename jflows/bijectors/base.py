"""The bijector contract: three pure functions over explicit parameter and state pytrees.

A :class:`Bijector` is an optax-style named tuple of functions::

    init(key, x)                                   -> (params, state)
    forward(params, state, x, *, cond=None, train=False, key=None) -> (y, log_det, state)
    inverse(params, state, y, *, cond=None, train=False, key=None) -> (x, log_det, state)

* ``forward`` maps base space to data space (the sampling direction, as in TFP);
  ``inverse`` maps data to base space (the density direction).
* ``log_det`` is ``log|det J|`` of the function that was applied, so at a pair ``y = f(x)``
  the inverse's log-det is minus the forward's.
* Inputs carry any number of leading batch axes in front of ``event_ndims`` event axes;
  ``log_det`` has exactly the batch shape. The same function serves a batch directly and a
  single event under :func:`jax.vmap`.
* ``params`` (trained by an optimizer) and ``state`` (not trained, e.g. batch-norm running
  statistics) are separate pytrees of arrays. Stateless bijectors return the empty state
  ``()``, parameter-free ones the empty params ``()``. Nothing is cached or mutated.
* ``x`` given to ``init`` may be a :class:`jax.ShapeDtypeStruct`: ``init`` only reads the
  shape and dtype, so ``jax.eval_shape(b.init, key, x)`` works.
* A Bijector holds only static configuration (closures over Python constants). Close over
  it inside jitted functions; never pass it as a ``jit`` argument.

**Diagnostics** travel beside the result, never in ``state`` (blackjax's ``(state, info)``
split). A bijector that reports something (FFJORD: solver steps, function evaluations and
why a solve failed) also sets ``forward_with_info`` / ``inverse_with_info``, the same
functions returning ``(y, log_det, state, info)``; :func:`call_with_info` calls either kind
(``info = ()`` for bijectors that report nothing), and the combinators thread the parts'
infos in the shape of their params (a chain's tuple or dict, a scan's stacked layers).

``event_ndims`` is the number of trailing event axes ``forward`` consumes.
``event_ndims_out`` is ``None`` for bijectors whose output has the input's shape (all
but a few); shape-changing bijectors such as :func:`jflows.bijectors.reshape` set it to
the number of event axes ``forward`` produces (even when that number is unchanged), so
combinators know to track shapes through them.

The convenience functions at the bottom of this module are derived from the three core
functions and are the only place those derivations exist.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jflows.conditioning import CondShape

Params = Any
State = Any
Array = jax.Array

EMPTY: tuple = ()
"""The empty params / state pytree of parameter-free or stateless bijectors."""


class Bijector(NamedTuple):
    """A bijector as pure functions; see the module docstring for the contract."""

    init: Callable[..., tuple[Params, State]]
    forward: Callable[..., tuple[Array, Array, State]]
    inverse: Callable[..., tuple[Array, Array, State]]
    event_ndims: int = 0
    event_ndims_out: int | None = None
    cond_shape: CondShape = None
    forward_with_info: Callable[..., tuple[Array, Array, State, Any]] | None = None
    inverse_with_info: Callable[..., tuple[Array, Array, State, Any]] | None = None


def refuse_as_pytree(kind: str):
    """Register ``kind`` so that passing one to ``jax.jit`` (or any pytree function) says
    to close over it instead of JAX's "not a valid JAX type" about a function leaf."""

    def flatten(obj):
        raise TypeError(
            f"A jflows {kind.__name__} holds functions and static configuration, not arrays: "
            f"close over it (e.g. `loss = lambda params, x: -model.log_prob(params, ...)` "
            f"with `model` from the enclosing scope) instead of passing it as an argument "
            f"of jax.jit / vmap / grad or putting it in a pytree."
        )

    jax.tree_util.register_pytree_node(kind, flatten, lambda aux, children: None)
    return kind


refuse_as_pytree(Bijector)


def call_with_info(bijector: Bijector, direction: str, params, state, x, **kwargs):
    """``(y, log_det, state, info)`` of ``bijector.<direction>`` (``'forward'``/``'inverse'``).

    Bijectors without diagnostics report ``info = ()``.
    """
    with_info = getattr(bijector, f"{direction}_with_info")
    if with_info is not None:
        return with_info(params, state, x, **kwargs)
    return (*getattr(bijector, direction)(params, state, x, **kwargs), EMPTY)


def has_info(*bijectors: Bijector) -> bool:
    """Whether any of ``bijectors`` reports diagnostics (sets ``*_with_info``)."""
    return any(b.forward_with_info is not None or b.inverse_with_info is not None
               for b in bijectors)


def without_info(with_info: Callable) -> Callable:
    """The contract's ``(y, log_det, state)`` function from a ``*_with_info`` one."""

    def call(params, state, x, **kwargs):
        return with_info(params, state, x, **kwargs)[:3]

    return call


def output_event_ndims(bijector: Bijector) -> int:
    """Number of event axes of ``forward``'s output (= of ``inverse``'s input)."""
    if bijector.event_ndims_out is None:
        return bijector.event_ndims
    return bijector.event_ndims_out


# --------------------------------------------------------------------------------------
# Helpers for implementers: rank checks and log-det reductions, written once.
# --------------------------------------------------------------------------------------


def check_event_rank(x, event_ndims: int, name: str) -> None:
    """Raise a ValueError at trace time when ``x`` has fewer axes than the event needs."""
    ndim = len(x.shape)
    if ndim < event_ndims:
        raise ValueError(
            f"{name}: expected an input with at least {event_ndims} axes "
            f"(event_ndims={event_ndims}) plus any leading batch axes, "
            f"got shape {tuple(x.shape)}."
        )


def check_event_shape(x, expected_event_shape: tuple[int, ...], name: str, what: str) -> None:
    """Raise a ValueError when the trailing axes of ``x`` are not ``expected_event_shape``.

    ``what`` says where the expectation comes from (e.g. "the parameters made by init").
    """
    n = len(expected_event_shape)
    check_event_rank(x, n, name)
    got = tuple(x.shape[len(x.shape) - n :]) if n else ()
    if got != tuple(expected_event_shape):
        raise ValueError(
            f"{name}: expected the trailing event shape {tuple(expected_event_shape)} "
            f"({what}), got input of shape {tuple(x.shape)}."
        )


def sum_rightmost(a: Array, n: int) -> Array:
    """Sum over the last ``n`` axes of ``a`` (``n == 0`` returns ``a``)."""
    if n == 0:
        return a
    return jnp.sum(a, axis=tuple(range(a.ndim - n, a.ndim)))


def sum_broadcast_event(log_det: Array, shape: tuple[int, ...], event_ndims: int) -> Array:
    """``sum_rightmost(broadcast_to(log_det, shape), event_ndims)`` without materialising it.

    Elementwise log-dets are often constants or parameter-shaped (e.g. ``log|s|`` of a
    scale): axes along which ``log_det`` is broadcast are multiplied by their size instead
    of summed, so a constant costs O(batch) rather than O(batch x event).
    """
    log_det = jnp.asarray(log_det)
    ndim = len(shape)
    log_det = log_det.reshape((1,) * (ndim - log_det.ndim) + log_det.shape)
    event_axes = tuple(range(ndim - event_ndims, ndim))
    repeats = math.prod(shape[a] for a in event_axes if log_det.shape[a] == 1)
    summed = jnp.sum(log_det, axis=event_axes) if event_axes else log_det
    return jnp.broadcast_to(summed * repeats if repeats != 1 else summed,
                            tuple(shape[: ndim - event_ndims]))


def reduce_to_batch(log_det: Array, batch_ndim: int) -> Array:
    """Sum the trailing axes of a log-det until it has ``batch_ndim`` axes.

    Used by combinators whose parts have fewer event axes than the whole: a part's
    log-det then still has some of the combinator's event axes, which are summed here.
    """
    return sum_rightmost(log_det, log_det.ndim - batch_ndim)


def batch_shape_of(x, event_ndims: int) -> tuple[int, ...]:
    """The leading (batch) part of ``x.shape`` given the number of event axes."""
    return tuple(x.shape[: len(x.shape) - event_ndims])


def split_key(key, n: int):
    """``n`` independent keys for the parts of a combinator, or ``n`` Nones without a key."""
    if key is None:
        return [None] * n
    return [jax.random.fold_in(key, i) for i in range(n)]


# --------------------------------------------------------------------------------------
# Derived convenience functions (never re-implemented by individual bijectors).
# --------------------------------------------------------------------------------------


def forward_value(bijector: Bijector, params, state, x, **kwargs) -> Array:
    """``y = f(x)`` only."""
    return bijector.forward(params, state, x, **kwargs)[0]


def inverse_value(bijector: Bijector, params, state, y, **kwargs) -> Array:
    """``x = f^{-1}(y)`` only."""
    return bijector.inverse(params, state, y, **kwargs)[0]


def forward_log_det_jacobian(bijector: Bijector, params, state, x, **kwargs) -> Array:
    """``log|det df/dx|`` at ``x``, with the batch shape of ``x``."""
    return bijector.forward(params, state, x, **kwargs)[1]


def inverse_log_det_jacobian(bijector: Bijector, params, state, y, **kwargs) -> Array:
    """``log|det df^{-1}/dy|`` at ``y`` (= minus the forward log-det at ``f^{-1}(y)``)."""
    return bijector.inverse(params, state, y, **kwargs)[1]


def forward_and_log_det(bijector: Bijector, params, state, x, **kwargs) -> tuple[Array, Array]:
    """``(y, log_det)`` without the state, for callers that do not train statistics."""
    y, log_det, _ = bijector.forward(params, state, x, **kwargs)
    return y, log_det


def inverse_and_log_det(bijector: Bijector, params, state, y, **kwargs) -> tuple[Array, Array]:
    """``(x, log_det)`` of the inverse without the state."""
    x, log_det, _ = bijector.inverse(params, state, y, **kwargs)
    return x, log_det
