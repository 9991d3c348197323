"""Batch normalization as a bijector (Dinh et al. 2017; Papamakarios et al. 2017, MAF).

The density direction (``inverse``: data -> base) normalizes, per feature ``c`` on the
last axis::

    u = (x - m) / sqrt(v + eps) * exp(gamma) + beta
    log|det du/dx| = sum over the event of (gamma_c - log(v_c + eps) / 2)

and the sampling direction (``forward``) is its inverse,
``x = (u - beta) * exp(-gamma) * sqrt(v + eps) + m`` with the negated log-det. ``gamma``
(``'log_scale'``) and ``beta`` (``'shift'``) are learnable params; the statistics
``m, v`` live in the state and are never touched by the optimizer.

* ``inverse(..., train=True)`` uses the batch's statistics, reduced over every axis but
  the last (batch axes and, for ``event_ndims > 1``, the spatial event axes), averaged
  across devices with ``lax.pmean`` over ``axis_name`` when given (pmap / shard_map /
  vmap with a named axis). Gradients flow through them as in ordinary batch norm. It
  returns the running averages updated as ``r <- decay * r + (1 - decay) * batch``.
* Otherwise (``train=False``, and always in ``forward``) the running statistics are used.
* After training, :func:`recompute_batch_norm_statistics` sets every batch-norm layer of
  a flow to the statistics of the whole training set, as the MAF paper did.

Equals TFP's ``tfb.BatchNormalization`` (which TFP's JAX substrate does not ship) with
``gamma = exp(log_scale)``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jflows.bijectors.base import Bijector, check_event_rank, sum_broadcast_event


class BatchNormState(NamedTuple):
    """Running statistics of a batch-norm layer (its ``state``).

    ``decay`` is part of the state, not of the static configuration, so that
    :func:`recompute_batch_norm_statistics` can set it to 0 for one exact pass.
    """

    mean: jax.Array
    var: jax.Array
    decay: jax.Array


def batch_norm(
    *, decay: float = 0.99, eps: float = 1e-5, event_ndims: int = 1, axis_name=None
) -> Bijector:
    """Batch-norm bijector over the last axis; see the module docstring for the math.

    Args:
      decay: running-average decay of the statistics in ``train=True`` calls.
      eps: added to the variance.
      event_ndims: event axes (>= 1); the features are the last one.
      axis_name: a named axis (or tuple of them) to average batch statistics over, for
        data-parallel training; ``None`` uses the local batch only.
    """
    if event_ndims < 1:
        raise ValueError(f"batch_norm: event_ndims must be >= 1, got {event_ndims}.")
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"batch_norm: decay must be in [0, 1], got {decay}.")

    def init(key, x):
        del key
        check_event_rank(x, event_ndims, "batch_norm")
        c = x.shape[-1]
        params = {"log_scale": jnp.zeros((c,), x.dtype), "shift": jnp.zeros((c,), x.dtype)}
        state = BatchNormState(
            jnp.zeros((c,), x.dtype), jnp.ones((c,), x.dtype), jnp.asarray(decay, x.dtype)
        )
        return params, state

    def _check(params, state, x, name):
        check_event_rank(x, event_ndims, name)
        c = state.mean.shape[-1]
        if x.shape[-1] != c:
            raise ValueError(
                f"{name}: expected {c} features on the last axis (the size init saw), "
                f"got input of shape {tuple(x.shape)}."
            )

    def _log_det(params, var, x):
        per_feature = params["log_scale"] - 0.5 * jnp.log(var + eps)
        return sum_broadcast_event(per_feature, x.shape, event_ndims)

    def _batch_statistics(x):
        axes = tuple(range(x.ndim - 1))
        if not axes and axis_name is None:
            raise ValueError(
                "batch_norm.inverse(train=True): batch statistics need a batch; got a single "
                f"event of shape {tuple(x.shape)} and no axis_name. Pass a batch, or set "
                "axis_name to the vmap/pmap axis the events are mapped over."
            )
        mean = jnp.mean(x, axis=axes)
        if axis_name is not None:
            mean = jax.lax.pmean(mean, axis_name)
        var = jnp.mean(jnp.square(x - mean), axis=axes)
        if axis_name is not None:
            var = jax.lax.pmean(var, axis_name)
        return mean, var

    def forward(params, state, u, *, cond=None, train=False, key=None):
        del cond, train, key
        _check(params, state, u, "batch_norm.forward")
        x = (u - params["shift"]) * jnp.exp(-params["log_scale"]) * jnp.sqrt(
            state.var + eps
        ) + state.mean
        return x, -_log_det(params, state.var, u), state

    def inverse(params, state, x, *, cond=None, train=False, key=None):
        del cond, key
        _check(params, state, x, "batch_norm.inverse")
        if train:
            mean, var = _batch_statistics(x)
            keep = state.decay
            state = BatchNormState(
                keep * state.mean + (1 - keep) * jax.lax.stop_gradient(mean),
                keep * state.var + (1 - keep) * jax.lax.stop_gradient(var),
                state.decay,
            )
        else:
            mean, var = state.mean, state.var
        u = (x - mean) * jax.lax.rsqrt(var + eps) * jnp.exp(params["log_scale"]) + params["shift"]
        return u, _log_det(params, var, x), state

    return Bijector(init, forward, inverse, event_ndims)


def _is_batch_norm_state(node) -> bool:
    return isinstance(node, BatchNormState)


def recompute_batch_norm_statistics(bijector: Bijector, params, state, x, *, cond=None):
    """Set every batch-norm layer's statistics to those of the dataset ``x`` (MAF paper).

    Runs one density-direction pass (``bijector.inverse(..., train=True)``) over all of
    ``x`` with every batch-norm ``decay`` set to 0, so each layer stores the exact mean and
    variance of its own input, computed with the earlier layers already using theirs. The
    decays are then restored; all other state is returned unchanged. ``x`` must fit in
    memory in one pass (jit this function for large data).
    """
    zero_decay = jax.tree_util.tree_map(
        lambda s: s._replace(decay=jnp.zeros_like(s.decay)) if _is_batch_norm_state(s) else s,
        state,
        is_leaf=_is_batch_norm_state,
    )
    _, _, updated = bijector.inverse(params, zero_decay, x, cond=cond, train=True)
    return jax.tree_util.tree_map(
        lambda new, old: new._replace(decay=old.decay) if _is_batch_norm_state(new) else old,
        updated,
        state,
        is_leaf=_is_batch_norm_state,
    )
