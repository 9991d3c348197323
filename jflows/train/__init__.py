"""Training: one-call fitting, a small ``fit`` driver with hooks, data parallelism.

The common case, in one call (Adam, a held-out validation split, early stopping)::

    import jflows.train as jt

    params, state, history = jt.fit_to_data(jax.random.key(0), flow, x)

Everything else through ``fit``::

    def loss_fn(params, model_state, batch, key):     # on a batch (global or a shard)
        log_prob, model_state, info = flow.log_prob_and_state(params, model_state, batch,
                                                              train=True, key=key)
        return -log_prob.mean(), (model_state, {})

    state = jt.TrainState.create(params=params, model_state=model_state, optimizer=tx,
                                 key=jax.random.key(0))
    result = jt.fit(state, jt.make_train_step(loss_fn, tx), batches, epochs=100,
                    validation=jt.Validation(jt.make_eval_step(eval_fn), valid, patience=30),
                    workdir="runs/maf", checkpointing=jt.Checkpointing(every=1000, resume=True))

Modules, one job each: :mod:`~jflows.train.one_call` (``fit_to_data``),
:mod:`~jflows.train.loop` (the ``fit`` driver), :mod:`~jflows.train.options` (its grouped
options), :mod:`~jflows.train.hooks` (progress, metric files, batch-norm recomputation, your
own), :mod:`~jflows.train.state` (the state pytree), :mod:`~jflows.train.step` (pure
train/eval steps), :mod:`~jflows.train.parallel` (``jit`` with shardings / ``shard_map`` /
``pmap``, multi-host), :mod:`~jflows.train.checkpoint` (orbax, verified restore),
:mod:`~jflows.train.metrics_log` (JSONL/CSV/TensorBoard/plot), :mod:`~jflows.train.sources`
(what ``fit`` accepts as data).
"""

from jflows.train.checkpoint import (
    Checkpoints,
    CheckpointWarning,
    CorruptCheckpointError,
    IncompatibleCheckpointError,
    tree_digest,
)
from jflows.train.hooks import Hook, MetricsWriter, ProgressBar, RecomputeBatchNorm, Run
from jflows.train.loop import FitResult, NonFiniteTrainingError, fit
from jflows.train.one_call import Fitted, fit_to_data
from jflows.train.options import Checkpointing, Logging, Parallel, Validation
from jflows.train.parallel import (
    DEFAULT_MODE,
    MODES,
    DataParallel,
    data_parallel,
    initialize_distributed,
    on_one_device,
)
from jflows.train.state import TrainState
from jflows.train.step import DATA_AXIS, make_eval_step, make_train_step

__all__ = [
    "DATA_AXIS",
    "DEFAULT_MODE",
    "MODES",
    "CheckpointWarning",
    "Checkpointing",
    "Checkpoints",
    "CorruptCheckpointError",
    "DataParallel",
    "FitResult",
    "Fitted",
    "Hook",
    "IncompatibleCheckpointError",
    "Logging",
    "MetricsWriter",
    "NonFiniteTrainingError",
    "Parallel",
    "ProgressBar",
    "RecomputeBatchNorm",
    "Run",
    "TrainState",
    "Validation",
    "data_parallel",
    "fit",
    "fit_to_data",
    "initialize_distributed",
    "make_eval_step",
    "make_train_step",
    "on_one_device",
    "tree_digest",
]
