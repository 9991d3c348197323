"""Child process of test_parallel.py: trains the batch-norm flow on 1 and 8 fake CPU devices.

Run as ``python -m tests.train.parity_child OUT.npz`` with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``. Saves, for the plain-jit reference
(``axis_name=None`` model on the whole global batch) and for every (mode, device count),
the params and model state after 20 steps (every mode of ``jt.MODES``), whether all
device replicas were identical,
the validation loss that ``fit`` computes on 8 devices with a ragged last batch next to
the direct mean over the whole validation set, and ``fit`` with a ragged last training
batch (61 rows: trimmed to 56 with a warning) next to ``fit`` given the 56 rows.
"""

import sys
import warnings

import jax
import numpy as np

import jflows.train as jt
from tests.train import models

STEPS, GLOBAL_BATCH = 20, 64


def flat(tree, prefix):
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return {f"{prefix}{jax.tree_util.keystr(path)}": np.asarray(leaf) for path, leaf in leaves}


def replicas_identical(runner, tree):
    for leaf in jax.tree.leaves(tree):
        shards = [np.asarray(s.data) for s in leaf.addressable_shards]
        if runner.mode == "pmap":  # a leading device axis: one row per device
            shards = [row for s in shards for row in s]
        if any(not np.array_equal(shards[0], s) for s in shards[1:]):
            return False
    return True


def main(out):
    assert jax.device_count() == 8, jax.devices()
    train = models.batches(models.data(STEPS * GLOBAL_BATCH), GLOBAL_BATCH)
    results = {}

    flow_ref = models.make_flow(axis_name=None)
    step_ref = jax.jit(jt.make_train_step(models.make_loss_fn(flow_ref), models.optimizer(),
                                          axis_name=None))
    state = models.initial_state(flow_ref)
    for batch in train:
        state, _ = step_ref(state, batch)
    results.update(flat((state.params, state.model_state), "reference"))

    flow = models.make_flow()
    step = jt.make_train_step(models.make_loss_fn(flow), models.optimizer())
    for mode in jt.MODES:
        for n in (1, 8):
            runner = jt.data_parallel(step, mode, jax.devices()[:n])
            dstate = runner.replicate(models.initial_state(flow))
            for batch in train:
                dstate, metrics = runner(dstate, batch)
            results[f"identical/{mode}/{n}"] = np.array(
                replicas_identical(runner, (dstate.params, dstate.model_state, metrics)))
            host = runner.unreplicate(dstate)
            results.update(flat((host.params, host.model_state), f"{mode}/{n}"))

    valid = models.data(203, seed=7)
    valid_batches = [{"x": valid["x"][i:i + GLOBAL_BATCH]} for i in range(0, 203, GLOBAL_BATCH)]
    fitted = jt.fit(models.initial_state(flow), step, train[:4], epochs=1,
                    validation=jt.Validation(jt.make_eval_step(models.make_eval_fn(flow)),
                                             valid_batches),
                    logging=jt.Logging(progress=False), parallel=jt.Parallel(prefetch=0))
    log_prob = flow_ref.log_prob(fitted.state.params, fitted.state.model_state, valid["x"])
    results["fit/validation_loss"] = np.array(fitted.history[-1]["validation"]["loss"])
    results["fit/direct_loss"] = np.asarray(-log_prob.mean(), np.float64)

    # A ragged last training batch (drop_remainder=False): 61 rows are trimmed to 56.
    ragged = train[:2] + [{"x": train[2]["x"][:61]}]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trimmed = jt.fit(models.initial_state(flow), step, ragged, epochs=1,
                         logging=jt.Logging(progress=False))
    results["trim/warnings"] = np.array([str(w.message) for w in caught
                                         if "left out" in str(w.message)])
    results["trim/steps"] = np.asarray(trimmed.last_state.step)
    by_hand = train[:2] + [{"x": train[2]["x"][:56]}]
    expected = jt.fit(models.initial_state(flow), step, by_hand, epochs=1,
                      logging=jt.Logging(progress=False))
    results.update(flat(trimmed.last_state.params, "trim/fit"))
    results.update(flat(expected.last_state.params, "trim/by_hand"))
    np.savez(out, **results)


if __name__ == "__main__":
    main(sys.argv[1])
