"""Collectives over named axes that may or may not be bound where the code is traced.

The same data-parallel code runs in two worlds:

* **per-device code** (``jax.pmap``, ``jax.shard_map``, ``jax.vmap(..., axis_name=)``): each
  call sees its shard of the batch, and a mean over the global batch needs a collective
  (``lax.pmean``) over the named axis;
* **global code** (plain ``jax.jit``, with or without ``NamedSharding`` inputs): arrays are
  global, XLA partitions the reductions itself, and no axis name is bound -- a collective
  over one raises ``NameError: unbound axis name``.

The functions here ask, at trace time, which of the given names are bound (JAX binds a
name inside the ``pmap`` / ``shard_map`` / named ``vmap`` that introduced it) and reduce
over those only. Along an unbound name the traced array is already global (plain ``jit``;
a ``shard_map`` manual over other mesh axes only), so skipping it is exact, not an
approximation. The cost of that convenience: a misspelt name, or a ``vmap`` over shards
that forgot its ``axis_name``, is skipped as well rather than raising.

``axis_name`` is one name, a tuple of names (reduced over jointly, as ``lax.pmean``
does) or ``None`` (no names).
"""

from __future__ import annotations

import math
from collections.abc import Hashable

import jax

AxisName = Hashable | tuple[Hashable, ...] | None


def axis_names(axis_name: AxisName) -> tuple[Hashable, ...]:
    """``axis_name`` as a tuple of names: ``None -> ()``, ``'b' -> ('b',)``."""
    if axis_name is None:
        return ()
    if isinstance(axis_name, tuple):
        return axis_name
    return (axis_name,)


def _bound_size(name: Hashable) -> int | None:
    """The size of the named axis where this is traced, ``None`` when it is not bound."""
    try:
        return jax.lax.axis_size(name)
    except NameError:
        return None


def axis_is_bound(axis_name: AxisName) -> bool:
    """Whether every name in ``axis_name`` is bound here (trace time; ``None``: False).

    True inside the ``pmap`` / ``shard_map`` / ``vmap(axis_name=)`` that names it, False
    under a plain ``jit`` or eagerly.
    """
    names = axis_names(axis_name)
    return bool(names) and all(_bound_size(name) is not None for name in names)


def bound_axes(axis_name: AxisName) -> tuple[Hashable, ...]:
    """The names of ``axis_name`` that are bound here, in order (``()`` when none)."""
    return tuple(name for name in axis_names(axis_name) if _bound_size(name) is not None)


def bound_axis_size(axis_name: AxisName) -> int:
    """Product of the sizes of the bound names of ``axis_name`` (1 when none is bound).

    A static Python int: the number of shards a per-device value is one of, so
    ``local rows * bound_axis_size(axis_name)`` is the global batch.
    """
    return math.prod(_bound_size(name) for name in bound_axes(axis_name))


def pmean_if_bound(tree, axis_name: AxisName):
    """``lax.pmean(tree, names)`` over the bound names of ``axis_name``; ``tree`` when none.

    Exact for the mean over the global batch when the shards have equal sizes (as under
    ``pmap`` and ``shard_map``).
    """
    names = bound_axes(axis_name)
    if not names:
        return tree
    return jax.lax.pmean(tree, names)
