"""Coupling bijectors: one part of the input, unchanged, sets the parameters of an
elementwise transformer applied to the rest (Dinh et al. 2015, 2017; Durkan et al. 2019).

With ``x = (x_A, x_B)`` split into a conditioning part ``x_A`` and a transformed part
``x_B``, a conditioner network ``theta = NN(x_A, cond)`` gives ``K`` parameters per element
of ``x_B`` and a per-element :class:`jflows.nets.autoregressive.Transformer` ``f``::

    forward (base -> data):   y_A = x_A,  y_B = f.forward(theta, x_B)
    inverse (data -> base):   x_A = y_A,  x_B = f.inverse(theta, y_B)    (theta = NN(y_A))
    log|det J| = sum over the elements of x_B of log|d y_B / d x_B|

The Jacobian is block-triangular (``y_A`` does not depend on ``x_B``), so both directions
cost one network pass. Transformers: :func:`jflows.bijectors.autoregressive.
affine_transformer` (``y = x exp(s) + t``: RealNVP's affine coupling, ``K = 2``) and
:func:`jflows.bijectors.spline.spline_transformer` (NSF's rational-quadratic coupling,
``K = 3 num_bins - 1``); any :class:`~jflows.nets.autoregressive.Transformer` plugs in.

Two layouts, the same math:

* :func:`masked_coupling` (distrax's ``MaskedCoupling(mask, conditioner, bijector)``): a
  boolean ``mask`` of the event shape, ``True`` where the element is *kept* (conditioned
  on). The conditioner sees the whole event with the transformed elements set to 0 and
  returns ``event_shape + (K,)``; the transformer's results are used where the mask is
  ``False``. Any mask (checkerboard, channels, ...) over any event rank.
* :func:`split_coupling` (RealNVP / FlowJAX / Glow layout): the last axis cut at
  ``split_index``; by default ``x_A = x[..., :split_index]`` is kept and ``x_B =
  x[..., split_index:]`` transformed (``swap=True``: the other way round). The conditioner
  sees only ``x_A`` and returns ``x_B.shape + (K,)``: no wasted inputs or outputs.

**The conditioner convention** (one, shared with the autoregressive bijectors): a
:class:`jflows.nets.autoregressive.Conditioner` of pure functions,

* ``init(key, x) -> params`` with ``x`` *one event* of the conditioner's input (an array or
  :class:`jax.ShapeDtypeStruct`: the masked event, or ``x_A``'s event shape);
* ``apply(params, x, cond) -> theta`` for inputs with any leading batch axes (``cond`` is
  ``None`` for an unconditional conditioner, else ``cond_batch + cond_shape`` with a batch
  shape broadcasting with ``x``'s); ``theta`` has the transformed part's shape ``+ (K,)``;
* ``params_per_dim`` (``K``, must equal the transformer's) and ``cond_shape``.

A Flax Linen module is accepted too and wrapped by :func:`linen_conditioner` (``module(x)``
or ``module(x, cond)`` for a conditional one; params only: no batch statistics or
dropout). :class:`MLPConditioner` is the ready one for vectors. Other frameworks (e.g. an
NNX bridge) plug in by building a ``Conditioner``.

**Initialisation at the identity.** :class:`MLPConditioner` zero-initialises its output
layer (RealNVP / Glow practice), so ``theta = 0`` and both shipped transformers are then
the identity: a fresh flow is its base distribution.

**Conditioning.** ``cond`` goes only to the conditioner; the bijector's ``cond_shape`` is
the conditioner's, checked with :func:`jflows.conditioning.check_cond`. A ``cond`` whose
batch shape is larger than the data's broadcasts the data.

Params are the conditioner's; the state is ``()``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jflows.bijectors.autoregressive import affine_transformer
from jflows.bijectors.base import (
    EMPTY,
    Bijector,
    check_event_rank,
    check_event_shape,
    sum_rightmost,
)
from jflows.conditioning import check_cond, cond_batch_shape, normalize_cond_shape
from jflows.nets.activations import resolve_activation
from jflows.nets.autoregressive import Conditioner, Transformer

Array = jax.Array


class MLPConditioner(nn.Module):
    """A dense network from a vector (and an optional conditioning vector) to ``K``
    parameters for each of ``out_size`` elements.

    ``__call__(x, cond=None)``: ``x`` of shape ``batch + (d_in,)`` and ``cond`` of shape
    ``cond_batch + (C,)`` (concatenated to ``x`` after broadcasting the batch shapes) ->
    ``batch + (out_size, params_per_dim)``. Hidden layers are Dense + ``activation``
    (LeCun-normal kernels); the output layer is zero-initialised when ``zero_init`` (the
    coupling then starts at the identity). Params are created in ``x``'s dtype.
    """

    out_size: int
    params_per_dim: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str | Callable = "relu"
    zero_init: bool = True

    @nn.compact
    def __call__(self, x, cond=None):
        dtype = x.dtype
        h = x
        if cond is not None:
            batch = jnp.broadcast_shapes(x.shape[:-1], cond.shape[:-1])
            h = jnp.concatenate([jnp.broadcast_to(x, batch + x.shape[-1:]),
                                 jnp.broadcast_to(cond.astype(dtype), batch + cond.shape[-1:])],
                                axis=-1)
        act = resolve_activation(self.activation)
        for size in self.hidden_sizes:
            h = act(nn.Dense(int(size), param_dtype=dtype, dtype=dtype)(h))
        init = nn.initializers.zeros if self.zero_init else nn.initializers.lecun_normal()
        out = nn.Dense(self.out_size * self.params_per_dim, kernel_init=init, param_dtype=dtype,
                       dtype=dtype)(h)
        return out.reshape(out.shape[:-1] + (self.out_size, self.params_per_dim))


def linen_conditioner(module: nn.Module, params_per_dim: int, cond_shape=None) -> Conditioner:
    """A Flax Linen module as a :class:`~jflows.nets.autoregressive.Conditioner`: params
    ``module.init(key, x[, cond])['params']`` (on one zero event, and a zero ``cond`` of
    ``cond_shape`` when conditional), ``apply = module.apply({'params': p}, x[, cond])``."""
    cond_shape = normalize_cond_shape(cond_shape, "linen_conditioner")

    def init(key, x):
        example = jnp.zeros(x.shape, x.dtype)
        extra = () if cond_shape is None else (jnp.zeros(cond_shape, x.dtype),)
        return module.init(key, example, *extra)["params"]

    def apply(params, x, cond):
        extra = () if cond is None else (cond,)
        return module.apply({"params": params}, x, *extra)

    return Conditioner(init, apply, params_per_dim, cond_shape)


def as_coupling_conditioner(conditioner, params_per_dim: int, cond_shape, name: str
                            ) -> Conditioner:
    """``conditioner`` (a :class:`~jflows.nets.autoregressive.Conditioner` or a Linen module)
    as a ``Conditioner`` with ``params_per_dim`` outputs per element; a ``Conditioner``'s
    ``cond_shape`` is its own, a module's is ``cond_shape``."""
    cond_shape = normalize_cond_shape(cond_shape, name)
    if isinstance(conditioner, nn.Module):
        return linen_conditioner(conditioner, params_per_dim, cond_shape)
    if not isinstance(conditioner, Conditioner):
        raise TypeError(f"{name}: the conditioner must be a jflows.nets.autoregressive."
                        f"Conditioner (pure init/apply) or a flax.linen.Module, got "
                        f"{type(conditioner).__name__}.")
    if conditioner.params_per_dim != params_per_dim:
        raise ValueError(f"{name}: the conditioner gives {conditioner.params_per_dim} "
                         f"parameters per element but the transformer takes "
                         f"{params_per_dim}.")
    if cond_shape is not None and cond_shape != conditioner.cond_shape:
        raise ValueError(f"{name}: cond_shape={cond_shape} but the Conditioner declares "
                         f"cond_shape={conditioner.cond_shape}; leave cond_shape unset.")
    return conditioner


class _Layout(NamedTuple):
    """How a coupling cuts one input: ``split(x) -> (conditioner input, transformed
    part)``, ``merge(x, image of the transformed part) -> output``, ``log_dets(per-element
    log-dets of the transformed part) -> those counted in the log-det`` (0 where kept)."""

    split: Callable
    merge: Callable
    log_dets: Callable


def _coupling(name: str, event_ndims: int, layout: _Layout, check: Callable,
              conditioner: Conditioner, transformer: Transformer) -> Bijector:
    """The coupling bijector of ``layout`` (see the module docstring); ``check(x, name)``
    raises a ValueError when the event shape does not fit the layout."""
    k = transformer.params_per_dim

    def init(key, x):
        check(x, f"{name}.init")
        event = jax.ShapeDtypeStruct(tuple(x.shape[x.ndim - event_ndims:]), x.dtype)
        return conditioner.init(key, jax.eval_shape(lambda v: layout.split(v)[0], event)), EMPTY

    # Jitted once per bijector (inlined under an outer jit), as masked_autoregressive:
    # eager calls compile the whole layer once instead of dispatching op by op.
    @functools.partial(jax.jit, static_argnums=3)
    def run(params, x, cond, direction):
        check(x, f"{name}.{direction}")
        batch = tuple(x.shape[: x.ndim - event_ndims])
        cond = check_cond(cond, conditioner.cond_shape, batch, f"{name}.{direction}")
        if cond is not None:
            batch = cond_batch_shape(cond, conditioner.cond_shape, batch, name)
            x = jnp.broadcast_to(x, batch + x.shape[x.ndim - event_ndims:])
        kept, part = layout.split(x)
        theta = conditioner.apply(params, kept, cond)
        if tuple(theta.shape) != tuple(part.shape) + (k,):
            raise ValueError(f"{name}.{direction}: the conditioner must return {k} "
                             f"parameters per transformed element, shape "
                             f"{tuple(part.shape) + (k,)} for the input {tuple(kept.shape)}; "
                             f"got shape {tuple(theta.shape)}.")
        image, log_det = getattr(transformer, direction)(theta, part)
        return layout.merge(x, image), sum_rightmost(layout.log_dets(log_det), event_ndims)

    def forward(params, state, x, *, cond=None, train=False, key=None):
        del train, key
        return (*run(params, x, cond, "forward"), state)

    def inverse(params, state, y, *, cond=None, train=False, key=None):
        del train, key
        return (*run(params, y, cond, "inverse"), state)

    return Bijector(init, forward, inverse, event_ndims, cond_shape=conditioner.cond_shape)


def masked_coupling(mask, conditioner, transformer: Transformer | None = None, *,
                    cond_shape=None) -> Bijector:
    """Coupling over any event shape with a boolean ``mask`` (``True``: kept).

    distrax: ``MaskedCoupling(mask, conditioner, bijector)``. ``event_ndims = mask.ndim``.

    Args:
      mask: booleans of the event shape; ``True`` elements pass unchanged and condition
        the others.
      conditioner: a :class:`~jflows.nets.autoregressive.Conditioner` or a Linen module
        mapping the masked event (transformed elements zeroed) to ``event_shape + (K,)``.
      transformer: the elementwise map (default the affine one, ``K = 2``).
      cond_shape: a Linen module's conditioning shape (a ``Conditioner`` declares its own).
    """
    name = "masked_coupling"
    mask = np.asarray(mask)
    if mask.dtype != np.bool_ or mask.ndim < 1:
        raise ValueError(f"{name}: mask must be a boolean array of the event shape (at least "
                         f"one axis), got dtype {mask.dtype} and shape {mask.shape}.")
    transformer = transformer or affine_transformer()
    net = as_coupling_conditioner(conditioner, transformer.params_per_dim, cond_shape, name)
    keep = jnp.asarray(mask)

    layout = _Layout(
        split=lambda x: (jnp.where(keep, x, 0.0).astype(x.dtype), x),
        merge=lambda x, image: jnp.where(keep, x, image),
        log_dets=lambda log_det: jnp.where(keep, 0.0, log_det),
    )

    def check(x, where):
        check_event_shape(x, mask.shape, where, "the shape of the mask")

    return _coupling(name, mask.ndim, layout, check, net, transformer)


def split_coupling(split_index: int, conditioner, transformer: Transformer | None = None, *,
                   swap: bool = False, event_ndims: int = 1, cond_shape=None) -> Bijector:
    """Coupling that cuts the last axis at ``split_index``.

    ``swap=False``: ``x[..., :split_index]`` is kept and conditions ``x[..., split_index:]``;
    ``swap=True``: the reverse. The event is the last ``event_ndims`` axes (``1`` for
    vectors; ``3`` for ``(H, W, C)`` images cut along channels, as Glow).

    Args:
      split_index: where the last axis is cut (``0 < split_index < size``).
      conditioner: a :class:`~jflows.nets.autoregressive.Conditioner` or a Linen module
        mapping the kept part (its event shape: the event with the kept size on the last
        axis) to the transformed part's shape ``+ (K,)``; e.g.
        ``MLPConditioner(size - split_index, K)`` for vectors.
      transformer: the elementwise map (default the affine one, ``K = 2``).
      swap: transform the first part instead of the second.
      event_ndims: the number of event axes (>= 1).
      cond_shape: a Linen module's conditioning shape (a ``Conditioner`` declares its own).
    """
    name = "split_coupling"
    if not isinstance(split_index, (int, np.integer)) or split_index < 1:
        raise ValueError(f"{name}: split_index must be an int >= 1, got {split_index!r}.")
    if not isinstance(event_ndims, int) or event_ndims < 1:
        raise ValueError(f"{name}: event_ndims must be an int >= 1, got {event_ndims!r}.")
    split_index = int(split_index)
    transformer = transformer or affine_transformer()
    net = as_coupling_conditioner(conditioner, transformer.params_per_dim, cond_shape, name)

    def halves(x):
        return x[..., :split_index], x[..., split_index:]

    def split(x):
        first, second = halves(x)
        return (second, first) if swap else (first, second)

    def merge(x, image):
        first, second = halves(x)
        parts = (image, second) if swap else (first, image)
        return jnp.concatenate(parts, axis=-1)

    def check(x, where):
        check_event_rank(x, event_ndims, where)
        if x.shape[-1] <= split_index:
            raise ValueError(f"{where}: the last axis must be longer than split_index="
                             f"{split_index} (both parts non-empty), got input of shape "
                             f"{tuple(x.shape)}.")

    return _coupling(name, event_ndims, _Layout(split, merge, lambda log_det: log_det),
                     check, net, transformer)
