"""Batch normalization as a bijector (Dinh et al. 2017; Papamakarios et al. 2017, MAF).

The density direction (``inverse``: data -> base) normalizes, per feature ``c`` on the
last axis::

    u = (x - m) / sqrt(v + eps) * exp(gamma) + beta
    log|det du/dx| = sum over the event of (gamma_c - log(v_c + eps) / 2)

and the sampling direction (``forward``) is its inverse,
``x = (u - beta) * exp(-gamma) * sqrt(v + eps) + m`` with the negated log-det. ``gamma``
(``'log_scale'``) and ``beta`` (``'shift'``) are learnable params; the statistics
``m, v`` live in the state and are never touched by the optimizer.

* ``inverse(..., train=True)`` uses the batch's statistics (mean and biased variance),
  reduced over every axis but the last (batch axes and, for ``event_ndims > 1``, the
  spatial event axes). With ``axis_name`` they are averaged over the named axes that are
  bound where the call is traced (``pmap`` / ``shard_map`` / ``vmap(axis_name=)``:
  :func:`jflows.collectives.pmean_if_bound`); under a plain ``jax.jit`` -- also with
  ``NamedSharding`` inputs -- no name is bound, the input is the global batch and XLA
  reduces it across devices itself. Gradients flow through the statistics as in ordinary
  batch norm. The call returns the running averages updated as
  ``r <- decay * r + (1 - decay) * batch``.
* Otherwise (``train=False``, and always in ``forward``) the running statistics are used.
* After training, :func:`recompute_batch_norm_statistics` sets every batch-norm layer of
  a flow to the statistics of the whole training set, as the MAF paper did.

**Degenerate batches** (``train=True``), checked at trace time from the static shapes:

* an *empty* batch raises a ValueError: its statistics are NaN and would overwrite the
  running ones;
* fewer than 2 values per feature raise a ValueError: the variance of one value is 0, so
  every point would get the log-density bonus ``-log(eps)/2`` (5.8 nats per feature at
  ``eps=1e-5``). The count is that of the *global* batch the statistics average over:
  rows x spatial event size x the sizes of the bound ``axis_name`` axes, so one row on
  each of 8 devices is a batch of 8;
* a feature whose variance is tiny (a constant data column, or one that an earlier layer
  squeezed) is legitimate and kept -- eps bounds its log-det term by ``-log(eps)/2`` --
  but reported. A feature is *low-variance* when ``v_c <= low_variance_factor * eps``
  (default ``100 * eps = 1e-3``): its term ``-log(v_c + eps)/2`` of the log-det is then at
  least ``-log((low_variance_factor + 1) eps)/2`` (3.4 nats at the defaults), a
  density bonus that features on the unit scale a flow's batch norm usually sees never
  get; at ``v_c <= eps`` eps dominates and the layer stops normalizing (output variance
  ``v_c / (v_c + eps) <= 1/2``). A constant data column in a MAF reaches the batch norms
  as variances of a few eps (the MADE shift depends on the other columns only weakly at
  init), hence the default factor. ``forward_with_info`` / ``inverse_with_info`` return
  :class:`BatchNormInfo` with the count of such features (of the variance the call used:
  the batch's in ``train=True``, else the running one), and :func:`batch_norm_metrics`
  totals it over a flow's info for a training metric.

Equals TFP's ``tfb.BatchNormalization`` (which TFP's JAX substrate does not ship) with
``gamma = exp(log_scale)`` on ordinary batches, and ``flax.linen.BatchNorm`` (tested).
Neither checks the degenerate cases: TFP's ``tf.nn.moments`` (like flax) gives NaN
statistics for an empty batch and variance 0 for a batch of one, hence the ``-log(eps)/2``
bonus per feature.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jflows.bijectors.base import Bijector, check_event_rank, sum_broadcast_event, without_info
from jflows.collectives import bound_axes, bound_axis_size, pmean_if_bound


class BatchNormState(NamedTuple):
    """Running statistics of a batch-norm layer (its ``state``).

    ``decay`` is part of the state, not of the static configuration, so that
    :func:`recompute_batch_norm_statistics` can set it to 0 for one exact pass.
    """

    mean: jax.Array
    var: jax.Array
    decay: jax.Array


class BatchNormInfo(NamedTuple):
    """What one batch-norm call reports beside its result (its ``info``).

    Attributes:
      low_variance_dims: number of features whose variance used by the call (the batch's
        in ``train=True``, else the running one) is at most ``low_variance_factor * eps``
        (int32 scalar; stacked per layer under ``scan``). Nonzero means a near-constant
        feature inflates the log-det: see the module docstring.
    """

    low_variance_dims: jax.Array


def batch_norm(
    *, decay: float = 0.99, eps: float = 1e-5, event_ndims: int = 1, axis_name=None,
    low_variance_factor: float = 100.0,
) -> Bijector:
    """Batch-norm bijector over the last axis; see the module docstring for the math.

    Args:
      decay: running-average decay of the statistics in ``train=True`` calls.
      eps: added to the variance (>= 0).
      event_ndims: event axes (>= 1); the features are the last one.
      axis_name: a named axis (or tuple of them) to average batch statistics over when it
        is bound (data-parallel ``pmap`` / ``shard_map``, or ``vmap`` over single events);
        skipped where it is not (plain ``jit``: the input is the global batch). ``None``
        uses the input alone.
      low_variance_factor: a feature with variance at most ``low_variance_factor * eps``
        is counted in the info's ``low_variance_dims`` (>= 0; only reported, the result
        is unchanged).

    Returns:
      A Bijector with ``forward_with_info`` / ``inverse_with_info`` reporting
      :class:`BatchNormInfo`. ``inverse(train=True)`` raises a ValueError for an empty
      batch or one with fewer than 2 values per feature (see the module docstring).
    """
    if event_ndims < 1:
        raise ValueError(f"batch_norm: event_ndims must be >= 1, got {event_ndims}.")
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"batch_norm: decay must be in [0, 1], got {decay}.")
    if not eps >= 0.0:
        raise ValueError(f"batch_norm: eps must be >= 0, got {eps}.")
    if not low_variance_factor >= 0.0:
        raise ValueError(
            f"batch_norm: low_variance_factor must be >= 0, got {low_variance_factor}."
        )
    low_variance = low_variance_factor * eps

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

    def _info(var):
        return BatchNormInfo(jnp.sum(var <= low_variance, dtype=jnp.int32))

    def _check_batch_size(x):
        """Raise for a global batch with fewer than 2 values per feature (static shapes)."""
        shards = bound_axis_size(axis_name)
        values = math.prod(x.shape[:-1]) * shards
        if values >= 2:
            return
        name = "batch_norm.inverse(train=True)"
        where = f"input shape {tuple(x.shape)}"
        if bound_axes(axis_name):
            where += f", {shards} shard(s) over axis_name {axis_name!r}"
        elif axis_name is not None:
            where += (f"; axis_name {axis_name!r} is not bound here (plain jit or eager), "
                      "so the input is the whole batch")
        if values == 0:
            raise ValueError(
                f"{name}: got an empty batch ({where}). Batch statistics of no values are "
                "NaN and would overwrite the running statistics: skip empty batches."
            )
        raise ValueError(
            f"{name}: batch statistics need at least 2 values per feature, got {values} "
            f"({where}). The variance of one value is 0, which would add -log(eps)/2 per "
            "feature to every log-density. Pass a batch of at least 2 (the global batch "
            "across devices counts; vmap single events with axis_name), or use train=False "
            "(running statistics)."
        )

    def _batch_statistics(x):
        _check_batch_size(x)
        axes = tuple(range(x.ndim - 1))
        mean = pmean_if_bound(jnp.mean(x, axis=axes), axis_name)
        var = pmean_if_bound(jnp.mean(jnp.square(x - mean), axis=axes), axis_name)
        return mean, var

    def forward_with_info(params, state, u, *, cond=None, train=False, key=None):
        del cond, train, key
        _check(params, state, u, "batch_norm.forward")
        x = (u - params["shift"]) * jnp.exp(-params["log_scale"]) * jnp.sqrt(
            state.var + eps
        ) + state.mean
        return x, -_log_det(params, state.var, u), state, _info(state.var)

    def inverse_with_info(params, state, x, *, cond=None, train=False, key=None):
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
        return u, _log_det(params, var, x), state, _info(var)

    return Bijector(init, without_info(forward_with_info), without_info(inverse_with_info),
                    event_ndims, None, None, forward_with_info, inverse_with_info)


def _is_batch_norm_info(node) -> bool:
    return isinstance(node, BatchNormInfo)


def batch_norm_metrics(info) -> dict[str, jax.Array]:
    """Totals over every batch-norm layer recorded in a (nested) info, for a metrics dict.

    ``info`` is what a call returned (a chain's tuple, a scan's stacked layers,
    ``transformed(...).log_prob_and_state``'s third output). Returns
    ``{'batch_norm_low_variance_dims': int32 scalar}``, the sum over layers of
    :attr:`BatchNormInfo.low_variance_dims` (0 on healthy batches), or ``{}`` when the info
    holds no batch-norm record. Works under ``jit``. Each record's value is the same on
    every device or mapped event (the statistics are shared): call it inside the mapped
    function, or on one copy of a ``pmap`` / per-event ``vmap`` output (index 0), never
    on all copies at once.
    """
    leaves = jax.tree_util.tree_leaves(info, is_leaf=_is_batch_norm_info)
    records = [leaf for leaf in leaves if _is_batch_norm_info(leaf)]
    if not records:
        return {}
    total = sum(jnp.sum(record.low_variance_dims, dtype=jnp.int32) for record in records)
    return {"batch_norm_low_variance_dims": jnp.asarray(total, jnp.int32)}


def _is_batch_norm_state(node) -> bool:
    return isinstance(node, BatchNormState)


def recompute_batch_norm_statistics(bijector: Bijector, params, state, x, *, cond=None):
    """Set every batch-norm layer's statistics to those of the dataset ``x`` (MAF paper).

    Runs one density-direction pass (``bijector.inverse(..., train=True)``) over all of
    ``x`` with every batch-norm ``decay`` set to 0, so each layer stores the exact mean and
    variance of its own input, computed with the earlier layers already using theirs. The
    decays are then restored; all other state is returned unchanged. ``x`` must fit in
    memory in one pass (jit this function for large data) and hold at least 2 rows (the
    degenerate-batch errors of :func:`batch_norm`).
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
