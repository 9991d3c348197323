"""Volume-preserving rearrangements: permute, reverse and reshape (``log|det J| = 0``)."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from jflows.bijectors.base import (
    EMPTY,
    Bijector,
    batch_shape_of,
    check_event_rank,
    check_event_shape,
)


def _check_axis(axis: int, name: str) -> int:
    if not isinstance(axis, int) or axis >= 0:
        raise ValueError(
            f"{name}: axis must be a negative int (counted from the end of the event), "
            f"got {axis!r}."
        )
    return -axis


def validate_permutation(permutation) -> np.ndarray:
    """Return ``permutation`` as a NumPy int array, or raise saying why it is not one."""
    try:
        perm = np.asarray(permutation)
    except Exception as err:  # a tracer cannot become a NumPy array
        raise ValueError(
            "permute: the permutation must be a concrete sequence of ints known when the "
            f"bijector is built, got {type(permutation).__name__}."
        ) from err
    if perm.ndim != 1 or perm.size == 0 or not np.issubdtype(perm.dtype, np.integer):
        raise ValueError(
            "permute: expected a non-empty 1-D sequence of ints, got "
            f"{perm.tolist() if perm.size < 50 else perm.shape} of dtype {perm.dtype}."
        )
    n = perm.size
    counts = np.bincount(perm[(perm >= 0) & (perm < n)], minlength=n)
    if not np.all(counts == 1) or np.any((perm < 0) | (perm >= n)):
        missing = np.flatnonzero(counts == 0).tolist()
        repeated = np.flatnonzero(counts > 1).tolist()
        out_of_range = perm[(perm < 0) | (perm >= n)].tolist()
        raise ValueError(
            f"permute: expected a permutation of 0..{n - 1}, got {perm.tolist()} "
            f"(missing {missing}, repeated {repeated}, out of range {out_of_range})."
        )
    return perm


def _no_params(key, x):
    del key, x
    return EMPTY, EMPTY


def permute(permutation, *, axis: int = -1) -> Bijector:
    """``y = x[..., permutation]`` along ``axis`` (negative); ``log|det J| = 0``.

    ``y[..., i] = x[..., permutation[i]]``, as TFP's ``tfb.Permute(permutation, axis)``.
    The event is the trailing ``-axis`` axes.
    """
    perm = validate_permutation(permutation).astype(np.int32)
    inverse_perm = np.argsort(perm).astype(np.int32)
    event_ndims = _check_axis(axis, "permute")

    def apply(indices, x, name):
        check_event_rank(x, event_ndims, name)
        if x.shape[axis] != perm.size:
            raise ValueError(
                f"{name}: expected size {perm.size} along axis {axis} (the permutation's "
                f"length), got input of shape {tuple(x.shape)}."
            )
        log_det = jnp.zeros(batch_shape_of(x, event_ndims), x.dtype)
        return jnp.take(x, indices, axis=axis), log_det

    def forward(params, state, x, *, cond=None, train=False, key=None):
        del params, cond, train, key
        return (*apply(perm, x, "permute.forward"), state)

    def inverse(params, state, y, *, cond=None, train=False, key=None):
        del params, cond, train, key
        return (*apply(inverse_perm, y, "permute.inverse"), state)

    return Bijector(_no_params, forward, inverse, event_ndims)


def reverse(*, axis: int = -1) -> Bijector:
    """Reverse the order along ``axis`` (negative), of any size; ``log|det J| = 0``.

    TFP: ``tfb.Permute(list(reversed(range(n))), axis)``. Used between MAF layers.
    """
    event_ndims = _check_axis(axis, "reverse")

    def flip(params, state, x, *, cond=None, train=False, key=None):
        del params, cond, train, key
        check_event_rank(x, event_ndims, "reverse")
        return jnp.flip(x, axis=axis), jnp.zeros(batch_shape_of(x, event_ndims), x.dtype), state

    return Bijector(_no_params, flip, flip, event_ndims)


def reshape(event_shape_out, event_shape_in) -> Bijector:
    """Reshape the event from ``event_shape_in`` to ``event_shape_out``; ``log|det J| = 0``.

    Argument order as TFP's ``tfb.Reshape(event_shape_out, event_shape_in)``. Both shapes
    are explicit (no ``-1``). ``init`` ignores its example input, so ``invert(reshape(...))``
    needs nothing special.
    """
    shape_out = tuple(int(d) for d in event_shape_out)
    shape_in = tuple(int(d) for d in event_shape_in)
    if any(d < 0 for d in shape_in + shape_out) or math.prod(shape_in) != math.prod(shape_out):
        raise ValueError(
            f"reshape: event_shape_in {shape_in} and event_shape_out {shape_out} must be "
            f"non-negative and hold the same number of elements "
            f"({math.prod(shape_in)} vs {math.prod(shape_out)})."
        )

    def move(x, source, target, name):
        check_event_shape(x, source, name, "the event shape given to reshape")
        batch_shape = batch_shape_of(x, len(source))
        return x.reshape(batch_shape + target), jnp.zeros(batch_shape, x.dtype)

    def forward(params, state, x, *, cond=None, train=False, key=None):
        del params, cond, train, key
        return (*move(x, shape_in, shape_out, "reshape.forward"), state)

    def inverse(params, state, y, *, cond=None, train=False, key=None):
        del params, cond, train, key
        return (*move(y, shape_out, shape_in, "reshape.inverse"), state)

    return Bijector(_no_params, forward, inverse, len(shape_in), len(shape_out))
