"""Pure per-device train and eval steps, written once for every kind of data parallelism.

The user writes the model's loss for a batch::

    loss_fn(params, model_state, batch, key) -> (loss, (new_model_state, metrics))
    eval_fn(params, model_state, batch, key) -> metrics

with ``loss`` a scalar mean over the batch and ``metrics`` a dict of scalars.
:func:`make_train_step` turns it into ``train_step(state, batch) -> (state, metrics)``.
The same step runs two ways:

* on the **global batch** under ``jax.jit`` (one device, or sharded over many by
  :func:`~jflows.train.data_parallel`'s default ``"jit"`` mode): no named axis is bound,
  so the averages below are skipped and the mean loss, its gradient and the batch-norm
  statistics are those of the global batch already;
* **per device** on one shard, inside a named axis (``axis_name``, default
  :data:`DATA_AXIS`, bound by ``shard_map`` / ``pmap`` / ``vmap(axis_name=...)``), where
  it averages across the axis with ``lax.pmean``:

* gradients: ``g = pmean_d(grad L_d)``, the gradient of the global-batch mean loss
  ``L = mean_d L_d`` when every device holds the same number of examples;
* the loss, the metrics and the float leaves of the new model state, so every device keeps
  the same copy. Batch-norm bijectors built with ``axis_name=DATA_AXIS`` already average
  their batch statistics over the axis (mean, then variance about the global mean), which
  makes them equal to the statistics of the global batch.

Averaging per-device means is exact for equal shards, which the data-parallel runner
guarantees (it splits each global batch evenly; see :mod:`jflows.train.parallel` for what
happens to a smaller last batch).

**Non-finite guard.** When the averaged loss or any gradient entry is not finite the
update is skipped: params, optimizer state, EMA and model state stay as they were, the
state's ``nonfinite_steps`` and ``nonfinite_streak`` counters go up, and the metrics report
``skipped = 1``. A finite step resets the streak. ``step`` advances either way (it counts
batches consumed). The decision is taken on the averaged values, so all devices agree.

**Randomness.** Step ``t`` hands ``loss_fn`` the key ``fold_in(key, t)``, per device
``fold_in(fold_in(key, t), i)`` on device ``i`` when the axis is bound: different on every
step (and device), identical after a resume. Per device, a stochastic loss therefore draws
different numbers on 1 and on 8 devices; on the global batch (``"jit"`` mode) it draws the
same on any number of devices. A deterministic loss gives the same result either way.

**EMA** (Polyak averaging, as PixelCNN++ with decay 0.9995): configured in
:meth:`TrainState.create` only (``ema_decay``); when the state keeps an EMA, every applied
update does ``ema <- decay * ema + (1 - decay) * params``.

**Optimizer.** The step checks, when traced, that ``optimizer.init`` gives the structure of
the state's ``opt_state``: a state created with Adam and a step built with SGD are refused.

The key lives in the state (DESIGN.md sketched ``train_step(state, batch, key)``): a
resumed run then restores it with everything else, and the runner passes no per-step
arguments besides the batch.

With ``axis_name=None`` the steps contain no collectives even inside a named axis.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from jflows.collectives import axis_is_bound
from jflows.train.state import TrainState

DATA_AXIS = "batch"
"""The named axis the per-device steps run under (pmap axis / shard_map mesh axis)."""

_tree_norm = optax.tree.norm if hasattr(optax, "tree") else optax.global_norm  # optax < 0.2.5

_TRAIN_STREAM = 0x747261  # folded into the run key: train and eval keys never collide
_EVAL_STREAM = 0x65766C


def _device_key(run_key, stream, index, axis_name):
    key = jax.random.fold_in(jax.random.wrap_key_data(run_key), stream)
    key = jax.random.fold_in(key, index)
    if axis_is_bound(axis_name):
        key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))
    return key


def _pmean_floats(tree, axis_name):
    """``lax.pmean`` over ``axis_name`` of the floating-point leaves of ``tree`` when that
    axis is bound (other leaves, and everything on the global batch, unchanged)."""
    if not axis_is_bound(axis_name):
        return tree

    def mean(leaf):
        if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
            return jax.lax.pmean(leaf, axis_name)
        return leaf

    return jax.tree.map(mean, tree)


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)
              if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)]
    return jnp.stack(leaves).all() if leaves else jnp.asarray(True)


def _check_metrics(metrics, where: str) -> dict:
    if not isinstance(metrics, dict):
        raise TypeError(
            f"{where}: metrics must be a dict of scalars, got {type(metrics).__name__}.")
    for name, value in metrics.items():
        if jnp.shape(value) != ():
            raise ValueError(
                f"{where}: metric {name!r} must be a scalar (average it over the shard), "
                f"got shape {jnp.shape(value)}."
            )
    return metrics


def _check_loss_output(out, model_state):
    where = "loss_fn"
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], tuple)
            and len(out[1]) == 2):
        raise TypeError(
            f"{where} must return (loss, (new_model_state, metrics)), got {type(out).__name__} "
            f"{jax.tree.structure(out)}."
        )
    loss, (new_model_state, metrics) = out
    if jnp.shape(loss) != ():
        raise ValueError(
            f"{where}: loss must be a scalar (the mean over the device's shard), "
            f"got shape {jnp.shape(loss)}."
        )
    if jax.tree.structure(new_model_state) != jax.tree.structure(model_state):
        raise ValueError(
            f"{where}: new_model_state must have the structure of model_state "
            f"{jax.tree.structure(model_state)}, got {jax.tree.structure(new_model_state)}."
        )
    _check_metrics(metrics, where)


def _check_optimizer(optimizer, state: TrainState) -> None:
    """Refuse an optimizer whose state does not have the structure of ``state.opt_state``
    (checked on shapes only, when the step is traced)."""
    expected = jax.eval_shape(optimizer.init, state.params)
    got = state.opt_state
    if jax.tree.structure(expected) != jax.tree.structure(got) or any(
            jnp.shape(e) != jnp.shape(g) for e, g in zip(jax.tree.leaves(expected),
                                                          jax.tree.leaves(got), strict=True)):
        raise ValueError(
            "make_train_step: the optimizer's state does not match the TrainState's opt_state "
            "(was the state created with another optimizer?): the step's optimizer.init gives "
            f"{jax.tree.structure(expected)}, the state holds {jax.tree.structure(got)}. Pass "
            "the same optax transformation to TrainState.create and make_train_step.")


def make_train_step(
    loss_fn: Callable,
    optimizer: optax.GradientTransformation,
    *,
    axis_name=DATA_AXIS,
) -> Callable:
    """The pure ``train_step(state, batch) -> (state, metrics)``.

    Args:
      loss_fn: ``(params, model_state, batch, key) -> (loss, (new_model_state, metrics))``
        on a batch (the global one, or one device's shard); see the module docstring.
      optimizer: the optax transformation (learning-rate schedules, clipping, weight decay
        are optax's: e.g. ``optax.chain(optax.clip_by_global_norm(1.0),
        optax.adamw(optax.cosine_decay_schedule(1e-3, 10_000), weight_decay=1e-4))``);
        the same one :meth:`TrainState.create` was given.
      axis_name: the named axis to average over where it is bound; None: never average.

    The EMA, if any, is the state's (:meth:`TrainState.create` ``ema_decay``).

    Returned metrics: the user's, plus ``loss``, ``grad_norm`` (global L2 norm of the
    averaged gradient) and ``skipped`` (1.0 when the update was skipped, else 0.0).
    """

    def train_step(state: TrainState, batch):
        _check_optimizer(optimizer, state)
        key = _device_key(state.key, _TRAIN_STREAM, state.step, axis_name)

        def loss_with_output_check(params):
            out = loss_fn(params, state.model_state, batch, key)
            _check_loss_output(out, state.model_state)
            return out

        (loss, (model_state, metrics)), grads = jax.value_and_grad(
            loss_with_output_check, has_aux=True
        )(state.params)
        loss, grads, model_state, metrics = _pmean_floats(
            (loss, grads, model_state, metrics), axis_name
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        # An update can overflow finite gradients into inf params: check what is kept too.
        finite = (jnp.isfinite(loss) & _all_finite(grads) & _all_finite(params)
                  & _all_finite(model_state))
        ema_params = state.ema_params
        if ema_params is not None:
            decay = state.ema_decay
            ema_params = jax.tree.map(
                lambda e, p: (decay * e + (1.0 - decay) * p).astype(e.dtype), ema_params, params
            )

        def keep_if_bad(new, old):
            return jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)

        bad = jnp.logical_not(finite).astype(jnp.int32)
        new_state = TrainState(
            step=state.step + 1,
            params=keep_if_bad(params, state.params),
            model_state=keep_if_bad(model_state, state.model_state),
            opt_state=keep_if_bad(opt_state, state.opt_state),
            ema_params=keep_if_bad(ema_params, state.ema_params),
            ema_decay=state.ema_decay,
            key=state.key,
            nonfinite_steps=state.nonfinite_steps + bad,
            nonfinite_streak=(state.nonfinite_streak + 1) * bad,
        )
        metrics = {
            **metrics,
            "loss": loss,
            "grad_norm": _tree_norm(grads),
            "skipped": bad.astype(jnp.float32),
        }
        return new_state, metrics

    return train_step


def make_eval_step(eval_fn: Callable, *, axis_name=DATA_AXIS, use_ema: bool | None = None):
    """The pure ``eval_step(state, batch, batch_index=0) -> metrics``.

    ``eval_fn(params, model_state, batch, key) -> metrics`` sees the EMA params when
    ``use_ema`` is True, or when it is None and the state keeps an EMA; else the params.
    Its key is ``fold_in(eval stream of the run key, batch_index)`` (and the device index
    where the axis is bound): the same at every evaluation, so validation numbers of
    different epochs compare. Metrics are averaged over the axis where it is bound.
    """

    def eval_step(state: TrainState, batch, batch_index=0):
        ema = state.ema_params is not None if use_ema is None else use_ema
        if ema and state.ema_params is None:
            raise ValueError(
                "make_eval_step(use_ema=True) needs a state with EMA params: create it with "
                "TrainState.create(..., ema_decay=...)."
            )
        params = state.ema_params if ema else state.params
        key = _device_key(state.key, _EVAL_STREAM, batch_index, axis_name)
        metrics = _check_metrics(eval_fn(params, state.model_state, batch, key), "eval_fn")
        return _pmean_floats(metrics, axis_name)

    return eval_step
