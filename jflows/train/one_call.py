"""``fit_to_data``: maximum-likelihood training of any density model in one call.

The common case (a model, an array of data, optionally ``cond``) without writing a loss,
an eval function, a state or a batch iterator; ``jflows.train.fit`` underneath, so it is
data-parallel over every device, guarded against non-finite steps and resumable in a
``workdir``::

    params, state, history = jt.fit_to_data(jax.random.key(0), flow, x)

It holds out a random ``validation_fraction`` of the rows, trains with Adam on the mean
negative log-likelihood of batches of the rest, evaluates the validation NLL after every
epoch, stops after ``patience`` epochs without improvement and returns the best epoch's
params and model state. A flow with batch-norm layers is validated, and returned, with
their statistics recomputed from the training rows (the MAF paper's protocol,
:class:`~jflows.train.RecomputeBatchNorm`): the running averages lag far behind the params
early on. Anything beyond that (schedules, EMA, custom losses and metrics, hooks) is
:func:`~jflows.train.fit`'s.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jflows.bijectors import BatchNormState, batch_norm_metrics
from jflows.conditioning import check_cond
from jflows.data import BatchIterator
from jflows.distributions.base import default_float_dtype, model_dtype
from jflows.train.hooks import RecomputeBatchNorm
from jflows.train.loop import fit
from jflows.train.options import Checkpointing, Logging, Parallel, Validation, _positive_int
from jflows.train.state import TrainState
from jflows.train.step import make_eval_step, make_train_step


class Fitted(NamedTuple):
    """What :func:`fit_to_data` returns: the best epoch's ``params`` and model ``state``,
    and ``history`` (one record per epoch, as ``FitResult.history``: ``train`` and
    ``validation`` losses, ``seconds``; with batch norm, ``batch_norm_low_variance_dims``,
    the epoch's mean count of near-constant features: see ``jflows.bijectors.batch_norm``).
    """

    params: Any
    state: Any
    history: list


def _negative_log_likelihood(model):
    def loss_fn(params, model_state, batch, key):
        log_prob, model_state, info = model.log_prob_and_state(
            params, model_state, batch["x"], cond=batch.get("cond"), train=True, key=key)
        return -jnp.mean(log_prob), (model_state, batch_norm_metrics(info))

    def eval_fn(params, model_state, batch, key):
        log_prob = model.log_prob(params, model_state, batch["x"], cond=batch.get("cond"),
                                  key=key)
        return {"loss": -jnp.mean(log_prob)}

    return loss_fn, eval_fn


BATCH_NORM_ROWS = 50_000
"""At most this many training rows go into the batch-norm recomputation before each
validation (one pass must fit in memory)."""


def _is_batch_norm(leaf) -> bool:
    return isinstance(leaf, BatchNormState)


def _has_batch_norm(model, state) -> bool:
    return hasattr(model, "bijector") and any(
        _is_batch_norm(leaf) for leaf in jax.tree.leaves(state, is_leaf=_is_batch_norm))


def _rows(x, cond, model, dtype) -> dict:
    x = np.asarray(x)
    if x.ndim < 1 or x.shape[1:] != tuple(model.event_shape):
        raise ValueError(f"fit_to_data: x must have shape (rows,) + event_shape = "
                         f"(rows, {', '.join(map(str, model.event_shape))}), got {x.shape}.")
    rows = {"x": x.astype(dtype)}
    if cond is not None or model.cond_shape is not None:
        check_cond(cond, model.cond_shape, x.shape[:1], "fit_to_data")
        cond = np.asarray(cond)
        if cond.shape[0] != x.shape[0]:
            raise ValueError(f"fit_to_data: cond needs one row per row of x ({x.shape[0]}), "
                             f"got shape {cond.shape}.")
        rows["cond"] = cond.astype(dtype) if np.issubdtype(cond.dtype, np.floating) else cond
    return rows


def _split(rows: dict, fraction: float, key) -> tuple[dict, dict | None]:
    n = len(rows["x"])
    held_out = int(round(fraction * n))
    if fraction and (held_out < 1 or held_out >= n):
        raise ValueError(f"fit_to_data: validation_fraction={fraction} of {n} rows leaves "
                         f"{held_out} for validation and {n - held_out} for training; both "
                         "need at least one.")
    order = np.asarray(jax.random.permutation(key, n))
    valid = None if not held_out else {k: v[order[n - held_out:]] for k, v in rows.items()}
    return {k: v[order[:n - held_out]] for k, v in rows.items()}, valid


def fit_to_data(
    key,
    model,
    x,
    *,
    cond=None,
    params=None,
    state=None,
    validation_fraction: float = 0.1,
    batch_size: int = 128,
    max_epochs: int = 200,
    patience: int | None = 10,
    learning_rate: float = 1e-3,
    optimizer: optax.GradientTransformation | None = None,
    workdir=None,
    resume: bool = False,
    progress: bool = True,
    parallel: Parallel = Parallel(),
) -> Fitted:
    """Fit ``model`` (any :class:`jflows.distributions.DensityModel`) to the rows of ``x``.

    Args:
      key: PRNG key: initialisation (when ``params`` is None), the split, the batches and
        any randomness of the model's log-density.
      model: the density model; its ``log_prob_and_state(..., train=True)`` is the
        training objective and ``log_prob`` the validation one.
      x: the data, ``(rows,) + model.event_shape``; cast to the params' float dtype.
      cond: conditioning, one row per row of ``x`` (for a conditional model).
      params, state: start from these instead of ``model.init``.
      validation_fraction: the share of rows held out (at random) for early stopping;
        0: none (then ``max_epochs`` epochs are trained and the last params returned).
      batch_size: rows per training step (the global batch, over all devices); capped at
        the number of training rows.
      max_epochs, patience: at most this many epochs; stop after ``patience`` epochs
        without a better validation NLL (None: never early).
      learning_rate: Adam's step size (ignored when ``optimizer`` is given).
      optimizer: any optax transformation instead of Adam.
      workdir: write metrics, the learning curve and checkpoints there (None: nothing).
      resume: continue the run in ``workdir``.
      progress: show a progress bar and a line per epoch.
      parallel: a :class:`~jflows.train.Parallel` (mode and devices; default all devices,
        ``jit`` with sharding).

    Returns:
      :class:`Fitted` ``(params, state, history)``.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"fit_to_data: validation_fraction must be in [0, 1), got "
                         f"{validation_fraction}.")
    _positive_int("fit_to_data", "batch_size", batch_size)
    init_key, split_key, shuffle_key, run_key = jax.random.split(key, 4)
    if params is None:
        params, fresh_state = model.init(init_key)
        state = fresh_state if state is None else state
    elif state is None:
        raise ValueError("fit_to_data: pass the model state with the params "
                         "(state=() for a model without one).")
    rows = _rows(x, cond, model, model_dtype(params, state) or default_float_dtype())
    train_rows, valid_rows = _split(rows, validation_fraction, split_key)
    n_train = len(train_rows["x"])
    seed = int(jax.random.randint(shuffle_key, (), 0, 2**31 - 1))
    batches = BatchIterator(train_rows, min(batch_size, n_train), seed=seed)
    tx = optimizer if optimizer is not None else optax.adam(learning_rate)
    loss_fn, eval_fn = _negative_log_likelihood(model)
    hooks = []
    if _has_batch_norm(model, state):
        hooks.append(RecomputeBatchNorm(model, train_rows["x"], cond=train_rows.get("cond"),
                                        max_rows=BATCH_NORM_ROWS))
    validation = None
    if valid_rows is not None:
        validation = Validation(
            make_eval_step(eval_fn),
            BatchIterator(valid_rows, min(4096, len(valid_rows["x"])), shuffle=False,
                          drop_remainder=False),
            monitor="loss", patience=patience)
    result = fit(
        TrainState.create(params=params, model_state=state, optimizer=tx, key=run_key),
        make_train_step(loss_fn, tx), batches, epochs=max_epochs, validation=validation,
        workdir=workdir, checkpointing=Checkpointing(resume=resume),
        logging=Logging(every=max(1, batches.steps_per_epoch), progress=progress),
        parallel=parallel, hooks=hooks)
    final = result.state
    if validation is None:  # no validation ran the hooks: the last state gets them here
        for hook in hooks:
            final = hook.before_eval(final)
    return Fitted(final.params, final.model_state, result.history)
