"""Training and scoring of the MAF-family models, shared by the ``maf_*`` experiments.

The MAF paper's protocol (Papamakarios et al. 2017, Sec. 4 and the reference code's
``experiments.py``): Adam, minibatches of 100, an L2 penalty of 1e-6 on all parameters,
early stopping after 30 epochs without validation improvement (the best epoch's params are
kept), and, after training, every batch-norm layer set to the statistics of the whole
training set. Reported numbers are mean log-likelihoods ``± 2`` standard errors, as in the
paper's tables.

Validation follows the reference code too: before every validation the batch-norm layers
are set to the statistics of the whole training set (``jflows.train.RecomputeBatchNorm``,
a ``before_eval`` hook), so early stopping monitors the numbers that are reported, and the
best epoch is kept with those statistics. (With the running averages instead, MAF(5) on
MNIST after 2 epochs scored -1860.4 nats on validation against -1388.4 with the
training-set statistics: the averages lag the params badly early on.)

A flow is given as ``make_flow(axis_name)``: the training copy is built with
``axis_name=jflows.train.DATA_AXIS`` (batch statistics averaged over devices), the scoring
copy with ``None``; both have the same params.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jflows.train as jt
from experiments.chunked import map_in_chunks
from jflows.bijectors import batch_norm_metrics, recompute_batch_norm_statistics
from jflows.data import BatchIterator


def optimizer(learning_rate: float, weight_decay: float = 1e-6) -> optax.GradientTransformation:
    """Adam on the loss plus ``weight_decay / 2 * ||params||^2`` (the reference code's L2)."""
    return optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(learning_rate))


def fit_flow(
    make_flow: Callable,
    train_x: np.ndarray,
    valid_x: np.ndarray | None,
    *,
    learning_rate: float,
    batch_size: int = 100,
    epochs: int = 1000,
    patience: int | None = 30,
    weight_decay: float = 1e-6,
    seed: int = 0,
    workdir=None,
    max_steps: int | None = None,
    eval_batch_size: int = 1000,
    progress: bool = True,
):
    """Train ``make_flow(jt.DATA_AXIS)`` by maximum likelihood with ``jflows.train.fit``.

    Returns ``(params, state, fit_result, train_seconds)`` with the batch-norm statistics
    already set from the whole training set (by the hook before each validation, or once at
    the end without validation).
    """
    train_flow, flow = make_flow(jt.DATA_AXIS), make_flow(None)
    params, model_state = flow.init(jax.random.key(seed))

    def loss_fn(params, model_state, batch, key):
        del key
        log_prob, model_state, info = train_flow.log_prob_and_state(params, model_state,
                                                                    batch["x"], train=True)
        return -jnp.mean(log_prob), (model_state, batch_norm_metrics(info))

    def eval_fn(params, model_state, batch, key):
        del key  # the statistics are the training set's: see the module docstring
        return {"loss": -jnp.mean(flow.log_prob(params, model_state, batch["x"]))}

    tx = optimizer(learning_rate, weight_decay)
    state = jt.TrainState.create(params=params, model_state=model_state, optimizer=tx,
                                 key=jax.random.key(seed))
    batches = BatchIterator({"x": train_x}, batch_size, seed=seed)
    validation = None
    recompute = jt.RecomputeBatchNorm(flow, train_x)
    if valid_x is not None:
        validation = jt.Validation(
            jt.make_eval_step(eval_fn),
            BatchIterator({"x": valid_x}, min(eval_batch_size, len(valid_x)), shuffle=False,
                          drop_remainder=False),
            patience=patience)
    start = time.perf_counter()
    result = jt.fit(
        state, jt.make_train_step(loss_fn, tx), batches, epochs=epochs, validation=validation,
        workdir=workdir, max_steps=max_steps, logging=jt.Logging(progress=progress),
        hooks=[recompute],
    )
    seconds = time.perf_counter() - start
    final = result.state if validation is not None else recompute.before_eval(result.state)
    return final.params, final.model_state, result, seconds


def set_batch_norm_from_data(flow, params, model_state, x, max_rows: int | None = None):
    """``model_state`` with the bijector's batch-norm statistics set to those of ``x`` (or
    of ``max_rows`` evenly spaced rows of it); the base's state is kept."""
    if not jax.tree_util.tree_leaves(model_state["bijector"]):
        return model_state
    rows = x if max_rows is None else x[:: max(1, len(x) // max_rows)]
    recompute = jax.jit(lambda p, s, v: recompute_batch_norm_statistics(flow.bijector, p, s, v))
    bijector_state = recompute(params["bijector"], model_state["bijector"], jnp.asarray(rows))
    return {**model_state, "bijector": bijector_state}


def log_likelihoods(flow, params, model_state, x, *, batch_size: int = 1000) -> np.ndarray:
    """``log p(x)`` per row (float64 NumPy), evaluated in jitted batches."""
    return map_in_chunks(flow.log_prob, (params, model_state), (x,), batch_size).astype(
        np.float64)


def mean_and_error(values: np.ndarray) -> tuple[float, float]:
    """The mean and two standard errors (the MAF paper's ``±``)."""
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(2 * values.std() / np.sqrt(len(values)))
