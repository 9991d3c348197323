"""Flax NNX modules in jflows' pure ``(params, ...)`` form (needs ``flax.nnx``).

An NNX module holds its parameters; jflows keeps them apart. :func:`pure` splits a module
once (``nnx.split``) into a static graph definition and its ``nnx.Param`` arrays, and
gives the two pure functions every jflows network slot takes::

    init(key, *example) -> params        # make(nnx.Rngs(key)), split: a nested dict of arrays
    apply(params, *args, **kwargs)       # nnx.merge(graphdef, params)(*args, **kwargs)

``params`` is a plain nested dict (``nnx.to_pure_dict``), so optax trains it and orbax
checkpoints it like any jflows params. Modules must hold only ``nnx.Param`` variables
(conditioners and vector fields have no batch statistics, dropout RNG state or caches);
others are refused with a clear error.

Where it plugs in:

* coupling conditioners (:func:`jflows.bijectors.coupling.split_coupling` /
  ``masked_coupling``): :func:`conditioner` builds the
  :class:`jflows.nets.autoregressive.Conditioner` they take;
* MADE-style conditioners of :func:`jflows.bijectors.masked_autoregressive`: pass
  ``c.apply`` with ``init=c.init, cond_shape=c.cond_shape`` (the module must be
  autoregressive, e.g. masked ``nnx.Linear`` layers with :func:`jflows.nets.made_masks`);
* FFJORD vector fields (:func:`jflows.ode.ffjord` takes a Linen module): Flax's own bridge,
  ``flax.nnx.bridge.ToLinen(FieldClass, args=(...))``, is that Linen module (params under
  ``{'params': ...}``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
from flax import nnx

from jflows.conditioning import normalize_cond_shape
from jflows.nets.autoregressive import Conditioner


class PureModule(NamedTuple):
    """An NNX module as ``init(key, *example) -> params`` and ``apply(params, *args)``."""

    init: Callable
    apply: Callable
    graphdef: Any


def _split(module, name: str):
    if not isinstance(module, nnx.Module):
        raise TypeError(f"{name}: make(rngs) must return a flax.nnx.Module, got "
                        f"{type(module).__name__}.")
    graphdef, params, rest = nnx.split(module, nnx.Param, ...)
    others = sorted({type(v).__name__ for v in jax.tree_util.tree_leaves(
        rest, is_leaf=lambda v: isinstance(v, nnx.Variable))})
    if others:
        raise ValueError(f"{name}: expected a module whose variables are all nnx.Param, got "
                         f"also {others}; jflows conditioners and vector fields hold params "
                         f"only (no batch statistics, RNG state or caches).")
    return graphdef, params


def pure(make: Callable[[nnx.Rngs], nnx.Module]) -> PureModule:
    """``make(rngs) -> nnx.Module`` as pure functions (see the module docstring).

    ``init(key, *example)`` ignores ``example`` (an NNX module knows its shapes when it is
    built) and returns ``make(nnx.Rngs(key))``'s params; ``apply(params, *args,
    **kwargs)`` rebuilds the module from ``params`` and calls it.
    """
    name = "interop.nnx.pure"
    graphdef, _ = _split(nnx.eval_shape(lambda: make(nnx.Rngs(0))), name)

    def init(key, *example):
        del example
        return nnx.to_pure_dict(_split(make(nnx.Rngs(key)), name)[1])

    def apply(params, *args, **kwargs):
        return nnx.merge(graphdef, params)(*args, **kwargs)

    return PureModule(init, apply, graphdef)


def conditioner(make: Callable[[nnx.Rngs], nnx.Module], params_per_dim: int,
                cond_shape=None) -> Conditioner:
    """An NNX module as a :class:`jflows.nets.autoregressive.Conditioner`: called as
    ``module(x)`` (or ``module(x, cond)`` when ``cond_shape`` is set) on inputs with any
    leading batch axes, returning ``params_per_dim`` parameters per transformed element
    (``... + (params_per_dim,)``)."""
    net = pure(make)
    cond_shape = normalize_cond_shape(cond_shape, "interop.nnx.conditioner")

    def apply(params, x, cond):
        return net.apply(params, x) if cond is None else net.apply(params, x, cond)

    return Conditioner(net.init, apply, params_per_dim, cond_shape)
