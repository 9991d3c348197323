"""ActNorm: a per-channel affine map with data-dependent initialisation (Glow).

Kingma & Dhariwal 2018 (Glow), Sec. 3.1. In the density direction (``inverse``: data
``x`` -> base ``u``), per channel ``c`` (the last axis)::

    u = (x + b) * exp(l)
    log|det du/dx| = (number of positions) * sum_c l_c      (= H W sum_c l_c for HWC images)

and ``forward`` (sampling) is ``x = u * exp(-l) - b`` with the negated log-det. The
log-det is ``event_ndims``-aware: the positions are the event's axes other than the last
(``event_ndims = 3``: ``H x W`` images in the HWC layout of the rest of jflows).

**Data-dependent initialisation, and how it fits the contract.** Glow sets ``b`` and ``l``
so that the first batch's outputs have zero mean and unit variance per channel. The
batch a layer must see is its *own input in the density direction* -- the data after
every layer nearer to the data -- which ``init(key, x)`` never sees: ``init`` may get an
abstract :class:`jax.ShapeDtypeStruct`, and inside a chain it gets the base-side example.
So the data-dependent part lives in the **state** (not trained), next to a flag:

* ``b = params['shift'] + state.shift`` and ``l = params['log_scale'] + state.log_scale``;
  ``init`` makes all four zero (the identity) and sets ``state.needs_init``.
* The first ``inverse(..., train=True)`` call while ``needs_init`` is set computes the
  batch's per-channel mean ``m`` and variance ``v`` (over every axis but the last, averaged
  over ``axis_name`` when given), stores ``state.shift = -m``,
  ``state.log_scale = -log(v + eps) / 2`` (as ``stop_gradient`` constants), clears the
  flag and normalises with them. Later calls use the stored values.

So a flow is initialised by its first training step, or explicitly, before training, by
one density-direction pass on a batch of your choice::

    _, state, _ = flow.log_prob_and_state(params, state, x_init, train=True)

which threads through ``chain``/``scan``/``transformed`` like batch-norm statistics do:
each ActNorm sees the already-normalised output of the layers before it, as in Glow's
sequential initialisation. The optimizer trains ``params`` (deviations from the data
initialisation, starting at 0; Adam's steps are the same as on ``b``, ``l`` themselves).
``forward`` and ``train=False`` never change the state.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jflows.bijectors.base import Bijector, check_event_rank, sum_broadcast_event


class ActNormState(NamedTuple):
    """The data-dependent part of an ActNorm layer (its ``state``).

    ``log_scale``, ``shift``: per-channel offsets set from the first training batch;
    ``needs_init``: True until then (a bool scalar).
    """

    log_scale: jax.Array
    shift: jax.Array
    needs_init: jax.Array


def channel_moments(x, axis_name, name: str):
    """Mean and variance per channel (last axis) over every other axis of ``x``, averaged
    over the named axis ``axis_name`` when given."""
    axes = tuple(range(x.ndim - 1))
    if not axes and axis_name is None:
        raise ValueError(
            f"{name}: data-dependent initialisation needs several values per channel; got "
            f"a single event of shape {tuple(x.shape)} and no axis_name. Pass a batch, or "
            "set axis_name to the vmap/pmap axis the events are mapped over.")
    mean = jnp.mean(x, axis=axes)
    if axis_name is not None:
        mean = jax.lax.pmean(mean, axis_name)
    var = jnp.mean(jnp.square(x - mean), axis=axes)
    if axis_name is not None:
        var = jax.lax.pmean(var, axis_name)
    return mean, var


def actnorm(*, event_ndims: int = 3, eps: float = 1e-6, axis_name=None) -> Bijector:
    """ActNorm over the last axis (channels); see the module docstring for the math.

    Args:
      event_ndims: event axes (>= 1); 3 for ``(H, W, C)`` images, 1 for vectors.
      eps: added to the batch variance at the data-dependent initialisation.
      axis_name: a named axis (or tuple of them) to average the initialisation's batch
        statistics over, for data-parallel training; ``None`` uses the local batch.
    """
    if event_ndims < 1:
        raise ValueError(f"actnorm: event_ndims must be >= 1, got {event_ndims}.")

    def init(key, x):
        del key
        check_event_rank(x, event_ndims, "actnorm")
        zeros = jnp.zeros(x.shape[-1:], x.dtype)
        return ({"log_scale": zeros, "shift": zeros},
                ActNormState(zeros, zeros, jnp.asarray(True)))

    def _check(state, x, name):
        check_event_rank(x, event_ndims, name)
        channels = state.shift.shape[-1]
        if x.shape[-1] != channels:
            raise ValueError(f"{name}: expected {channels} channels on the last axis (the "
                             f"size init saw), got input of shape {tuple(x.shape)}.")

    def _data_init(state, x):
        mean, var = jax.lax.stop_gradient(channel_moments(x, axis_name, "actnorm.inverse"))
        initialised = ActNormState(-0.5 * jnp.log(var + eps), -mean, jnp.asarray(False))
        return jax.tree_util.tree_map(
            lambda new, old: jnp.where(state.needs_init, new, old), initialised, state)

    def forward(params, state, u, *, cond=None, train=False, key=None):
        del cond, train, key
        _check(state, u, "actnorm.forward")
        log_scale = params["log_scale"] + state.log_scale
        x = u * jnp.exp(-log_scale) - (params["shift"] + state.shift)
        return x, -sum_broadcast_event(log_scale, u.shape, event_ndims), state

    def inverse(params, state, x, *, cond=None, train=False, key=None):
        del cond, key
        _check(state, x, "actnorm.inverse")
        if train:
            state = _data_init(state, x)
        log_scale = params["log_scale"] + state.log_scale
        u = (x + params["shift"] + state.shift) * jnp.exp(log_scale)
        return u, sum_broadcast_event(log_scale, x.shape, event_ndims), state

    return Bijector(init, forward, inverse, event_ndims)
