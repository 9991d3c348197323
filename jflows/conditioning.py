"""One conditioning vocabulary and one checker for every jflows model.

A conditional model declares ``cond_shape``, the shape of the conditioning input of *one*
event (``(C,)`` for a vector of ``C`` features, ``(num_classes,)`` for one-hot labels);
``cond_shape=None`` means the model is unconditional. A ``cond`` passed to a call has
``cond_batch_shape + cond_shape``, and ``cond_batch_shape`` must broadcast with the data's
batch shape (numpy rules): one ``cond`` for a whole batch, or one per event.

:func:`check_cond` is the only place these rules are written; every model (MADE, MAF,
FFJORD, PixelCNN++, transformed distributions) calls it, so the errors read the same
everywhere:

* ``cond`` given to an unconditional model is an error (never silently ignored);
* a conditional model called without ``cond`` is an error;
* a ``cond`` whose trailing axes are not ``cond_shape`` is an error;
* a ``cond`` whose batch shape does not broadcast with the data's names both shapes.

This module sits at the bottom of the package graph (it imports only JAX), so networks,
bijectors and distributions can all reach it.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

CondShape = tuple[int, ...] | None


def shape_tuple(value, what: str, minimum: int, name: str) -> tuple[int, ...]:
    """``value`` (an int or a sequence of ints, each ``>= minimum``) as a tuple of ints,
    with an error naming ``what`` (e.g. ``'event_shape'``) and the value got otherwise."""
    if isinstance(value, (int, np.integer)):
        value = (int(value),)
    try:
        shape = tuple(int(d) for d in value)
    except TypeError as err:
        raise TypeError(f"{name}: {what} must be an int or a tuple of ints, got "
                        f"{value!r}.") from err
    if any(d < minimum for d in shape):
        raise ValueError(f"{name}: {what} must have sizes >= {minimum}, got {shape}.")
    return shape


def normalize_cond_shape(cond_shape, name: str) -> CondShape:
    """``cond_shape`` as a tuple of positive ints (or None), with a clear error otherwise."""
    return None if cond_shape is None else shape_tuple(cond_shape, "cond_shape", 1, name)


def merge_cond_shapes(shapes: Sequence[CondShape], name: str) -> CondShape:
    """The one ``cond_shape`` of a model made of parts: every conditional part must agree."""
    found = {tuple(s) for s in shapes if s is not None}
    if len(found) > 1:
        raise ValueError(f"{name}: the conditional parts expect different cond shapes "
                         f"{sorted(found)}; they must share one cond.")
    return found.pop() if found else None


def check_cond(cond, cond_shape: CondShape, batch_shape: tuple[int, ...] | None, name: str):
    """Validate ``cond`` for a model with ``cond_shape`` and data of ``batch_shape``.

    Returns ``cond`` as an array (``None`` for unconditional models). ``batch_shape=None``
    skips the batch check (e.g. sampling, where the sample shape is still being formed).
    Raises ``ValueError`` naming what was expected and what was got.
    """
    if cond_shape is None:
        if cond is not None:
            raise ValueError(f"{name}: got cond of shape {tuple(jnp.shape(cond))}, but this "
                             "model is unconditional (cond_shape=None); build it with "
                             "cond_shape=... to condition it.")
        return None
    if cond is None:
        raise ValueError(f"{name}: this model is conditional (cond_shape={cond_shape}); pass "
                         f"cond=... of shape batch_shape + {cond_shape}.")
    cond = jnp.asarray(cond)
    n = len(cond_shape)
    if cond.ndim < n or tuple(cond.shape[cond.ndim - n:]) != tuple(cond_shape):
        raise ValueError(f"{name}: expected cond with trailing shape {cond_shape} "
                         f"(cond_shape), got cond of shape {tuple(cond.shape)}.")
    if batch_shape is not None:
        cond_batch_shape(cond, cond_shape, batch_shape, name)
    return cond


def cond_batch_shape(cond, cond_shape: tuple[int, ...], batch_shape: tuple[int, ...],
                     name: str) -> tuple[int, ...]:
    """The broadcast of the data's ``batch_shape`` and ``cond``'s batch shape."""
    own = tuple(cond.shape[: cond.ndim - len(cond_shape)])
    try:
        return tuple(np.broadcast_shapes(tuple(batch_shape), own))
    except ValueError as err:
        raise ValueError(f"{name}: cond's batch shape {own} (cond of shape "
                         f"{tuple(cond.shape)}) does not broadcast with the data's batch "
                         f"shape {tuple(batch_shape)}.") from err


def sample_batch_shape(sample_shape, cond, cond_shape: CondShape, name: str):
    """``(shape, cond)`` for sampling: ``sample_shape`` broadcast with ``cond``'s batch shape.

    With ``cond`` of shape ``(N,) + cond_shape`` and ``sample_shape=()`` this gives ``N``
    samples, one per conditioning input; ``sample_shape`` and the cond batch must broadcast.
    """
    shape = normalize_sample_shape(sample_shape, name)
    cond = check_cond(cond, cond_shape, None, name)
    if cond is not None:
        own = tuple(cond.shape[: cond.ndim - len(cond_shape)])
        try:
            shape = tuple(np.broadcast_shapes(shape, own))
        except ValueError as err:
            raise ValueError(f"{name}: sample_shape {shape} does not broadcast with cond's "
                             f"batch shape {own} (cond of shape {tuple(cond.shape)}).") from err
    return shape, cond


def normalize_sample_shape(sample_shape, name: str) -> tuple[int, ...]:
    """``sample_shape`` (an int or a sequence of ints >= 0) as a tuple."""
    return shape_tuple(sample_shape, "sample_shape", 0, name)
