"""Training: pure per-device steps, data parallelism over every device and host, ``fit``.

    import jflows.train as jt

    def loss_fn(params, model_state, batch, key):     # on one device's shard
        log_prob, model_state, info = flow.log_prob_and_state(params, model_state, batch,
                                                              train=True, key=key)
        return -log_prob.mean(), (model_state, {})

    state = jt.TrainState.create(params=params, model_state=model_state, optimizer=tx,
                                 key=jax.random.key(0))
    result = jt.fit(state, jt.make_train_step(loss_fn, tx), batches, epochs=100,
                    eval_step=jt.make_eval_step(eval_fn), validation_data=valid,
                    patience=30, workdir="runs/maf", checkpoint_every=1000, resume=True)

Modules, one job each: :mod:`~jflows.train.state` (the state pytree),
:mod:`~jflows.train.step` (pure per-device train/eval steps), :mod:`~jflows.train.parallel`
(pmap / shard_map runner, multi-host), :mod:`~jflows.train.checkpoint` (orbax, verified
restore), :mod:`~jflows.train.metrics_log` (JSONL/CSV/TensorBoard/plot),
:mod:`~jflows.train.sources` (what ``fit`` accepts as data), :mod:`~jflows.train.loop`
(``fit``).
"""

from jflows.train.checkpoint import Checkpoints, CheckpointWarning, tree_digest
from jflows.train.loop import FitResult, NonFiniteTrainingError, fit
from jflows.train.parallel import (
    DEFAULT_MODE,
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
    "CheckpointWarning",
    "Checkpoints",
    "DataParallel",
    "FitResult",
    "NonFiniteTrainingError",
    "TrainState",
    "data_parallel",
    "fit",
    "initialize_distributed",
    "make_eval_step",
    "make_train_step",
    "on_one_device",
    "tree_digest",
]
