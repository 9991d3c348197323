"""Child process of test_resume.py: trains the batch-norm flow with checkpoints.

``python -m tests.train.resume_child WORKDIR OUT.npz [--resume] [--slow SECONDS]`` trains
for 4 epochs of 10 steps (checkpoints every 5 steps, validation and EMA), optionally
sleeping before each batch so that a parent can kill it mid-run, and saves the final
states' arrays to OUT.npz.
"""

import argparse
import time

import jax
import numpy as np

import jflows.train as jt
from jflows.data import BatchIterator
from tests.train import models


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir")
    parser.add_argument("out")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--slow", type=float, default=0.0)
    args = parser.parse_args()

    train = BatchIterator(models.data(320), 32, seed=5)

    def batches_from(step):
        for batch in train.from_step(step):
            time.sleep(args.slow)
            yield batch

    flow = models.make_flow()
    result = jt.fit(
        models.initial_state(flow, ema_decay=0.9),
        jt.make_train_step(models.make_loss_fn(flow), models.optimizer()),
        batches_from, steps_per_epoch=train.steps_per_epoch, epochs=4,
        validation=jt.Validation(jt.make_eval_step(models.make_eval_fn(flow)),
                                 [models.data(40, seed=9)]),
        workdir=args.workdir, checkpointing=jt.Checkpointing(every=5, resume=args.resume),
        logging=jt.Logging(every=5, progress=False))
    arrays = {f"{name}{jax.tree_util.keystr(path)}": np.asarray(leaf)
              for name, state in (("best", result.state), ("last", result.last_state))
              for path, leaf in jax.tree_util.tree_leaves_with_path(state)}
    np.savez(args.out, **arrays)


if __name__ == "__main__":
    main()
