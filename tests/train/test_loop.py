"""fit: early stopping restoring the best epoch, files, exact resume, the non-finite guard."""

import json
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jflows.train as jt
from jflows.data import BatchIterator
from tests.train import models

# A model whose trajectory is known exactly: loss = -w with SGD(1) moves w by +1 per step,
# and the validation loss (w - 3.5)^2 is best at w = 3 (ties with w = 4 keep the first).
TX = optax.sgd(1.0)
TRAIN = [{"x": np.zeros((4, 1), np.float32)}]  # one batch per epoch


def linear_loss(params, model_state, batch, key):
    return -jnp.sum(params["w"]) + 0.0 * jnp.sum(batch["x"]), (model_state, {})


def distance_to_target(params, model_state, batch, key):
    return {"loss": (params["w"][0] - 3.5) ** 2, "w": params["w"][0]}


def linear_state(ema_decay=None):
    return jt.TrainState.create(params={"w": jnp.zeros(1)}, optimizer=TX,
                                key=jax.random.key(0), ema_decay=ema_decay)


def linear_fit(tmp_path, *, eval_step=None, patience=2, resume=False, **kwargs):
    validation = jt.Validation(
        eval_step or jt.make_eval_step(distance_to_target, use_ema=False), TRAIN,
        patience=patience)
    options = dict(epochs=20, validation=validation, workdir=tmp_path,
                   checkpointing=jt.Checkpointing(resume=resume),
                   logging=jt.Logging(progress=False))
    return jt.fit(linear_state(), jt.make_train_step(linear_loss, TX), TRAIN,
                  **{**options, **kwargs})


def test_early_stopping_returns_the_best_epoch_and_writes_every_file(tmp_path):
    result = linear_fit(tmp_path)
    assert result.stop_reason == "early_stopping"
    assert [h["validation"]["w"] for h in result.history] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert (result.best_step, result.best_metric) == (3, 0.25)
    assert float(result.state.params["w"][0]) == 3.0
    assert float(result.last_state.params["w"][0]) == 5.0
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    validation = [r["loss"] for r in records if r["split"] == "validation"]
    assert validation == [6.25, 2.25, 0.25, 0.25, 2.25]
    assert [r["loss"] for r in records if r["split"] == "train"] == [0.0, -1.0, -2.0, -3.0, -4.0]
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["step", "epoch", "split"] and "examples_per_s" in header
    assert (tmp_path / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    checkpoints = jt.Checkpoints(tmp_path / "checkpoints")
    assert checkpoints.best_steps() == [2, 3] and checkpoints.latest_steps() == [5]
    checkpoints.close()


def test_resuming_an_early_stopped_run_returns_its_best_state_without_training(tmp_path):
    linear_fit(tmp_path)
    again = linear_fit(tmp_path, resume=True)
    assert again.stop_reason == "early_stopping" and len(again.history) == 5
    assert float(again.state.params["w"][0]) == 3.0
    with pytest.raises(ValueError, match="already holds checkpoints"):
        linear_fit(tmp_path)


def test_schedule_clipping_and_weight_decay_come_from_optax(tmp_path):
    tx = optax.chain(optax.clip_by_global_norm(0.5),
                     optax.adamw(optax.linear_schedule(0.1, 0.0, 4), weight_decay=0.1))
    state = jt.TrainState.create(params={"w": jnp.zeros(1)}, optimizer=tx, key=jax.random.key(0))
    result = jt.fit(state, jt.make_train_step(linear_loss, tx), TRAIN, epochs=4,
                    logging=jt.Logging(progress=False))
    expected = state.params
    opt_state = tx.init(expected)
    for _ in range(4):
        grads = {"w": -jnp.ones(1)}
        updates, opt_state = tx.update(grads, opt_state, expected)
        expected = optax.apply_updates(expected, updates)
    np.testing.assert_allclose(result.state.params["w"], expected["w"], rtol=1e-6)


def flow_fit(workdir, train, *, validation_data=None, resume=False, **kwargs):
    flow = models.make_flow()
    validation = jt.Validation(jt.make_eval_step(models.make_eval_fn(flow)),
                               validation_data or [models.data(40, seed=9)])
    options = dict(epochs=3, validation=validation, workdir=workdir,
                   checkpointing=jt.Checkpointing(every=4, resume=resume),
                   logging=jt.Logging(every=3, progress=False))
    return jt.fit(models.initial_state(flow, ema_decay=0.9),
                  jt.make_train_step(models.make_loss_fn(flow), models.optimizer()),
                  train, **{**options, **kwargs})


TIMINGS = ("examples_per_s", "seconds", "eval_seconds")


def without_timing(path):
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in records]


def history_without_timing(history):
    return [{k: v for k, v in record.items() if k not in TIMINGS} for record in history]


def test_stopping_mid_epoch_and_resuming_gives_the_uninterrupted_run_bit_for_bit(tmp_path):
    train = BatchIterator(models.data(200), 32, seed=3)  # 6 steps per epoch
    full = flow_fit(tmp_path / "full", train)
    flow_fit(tmp_path / "parts", train, max_steps=9)  # stops mid-epoch 2, saves step 9
    resumed = flow_fit(tmp_path / "parts", train, resume=True)
    for a, b in ((full.last_state, resumed.last_state), (full.state, resumed.state)):
        jax.tree.map(np.testing.assert_array_equal, a, b)
    assert history_without_timing(full.history) == history_without_timing(resumed.history)
    assert full.best_step == resumed.best_step
    assert without_timing(tmp_path / "full" / "metrics.jsonl") == without_timing(
        tmp_path / "parts" / "metrics.jsonl")


def test_a_nan_validation_metric_never_becomes_the_best(tmp_path):
    def nan_at_first_epoch(params, model_state, batch, key):
        loss = (params["w"][0] - 3.5) ** 2
        return {"loss": jnp.where(params["w"][0] < 1.5, jnp.nan, loss), "w": params["w"][0]}

    result = linear_fit(tmp_path, eval_step=jt.make_eval_step(nan_at_first_epoch,
                                                                use_ema=False))
    assert np.isnan(result.history[0]["validation"]["loss"])
    assert (result.best_step, result.best_metric) == (3, 0.25)
    assert float(result.state.params["w"][0]) == 3.0


def nan_batches(bad_steps, n=8):
    """A sequence of batches of the flow's data; batches in bad_steps hold a NaN."""
    batches = models.batches(models.data(16 * n), 16)
    for i in bad_steps:
        batches[i] = {"x": batches[i]["x"].copy()}
        batches[i]["x"][0, 0] = np.nan
    return batches


def test_a_nan_batch_is_skipped_reported_and_params_stay_finite(tmp_path):
    result = flow_fit(tmp_path, nan_batches([2]), epochs=1)
    assert int(result.last_state.nonfinite_steps) == 1
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(result.last_state.params))
    assert result.history[0]["train"]["skipped_steps"] == 1
    assert np.isfinite(result.history[0]["train"]["loss"])
    records = without_timing(tmp_path / "metrics.jsonl")
    assert sum(r["skipped_steps"] for r in records if r["split"] == "train") == 1


def test_consecutive_nan_steps_stop_training_and_keep_the_last_checkpoint(tmp_path):
    with pytest.raises(jt.NonFiniteTrainingError, match="3 consecutive steps") as info:
        flow_fit(tmp_path, nan_batches([5, 6, 7]), epochs=1, max_nonfinite_streak=3)
    error = info.value
    assert error.step == 8 and error.checkpoint_step == 4
    assert int(error.state.nonfinite_streak) == 3
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(error.state.params))
    checkpoints = jt.Checkpoints(tmp_path / "checkpoints")
    assert checkpoints.latest_steps() == [4]
    state, _ = checkpoints.restore_latest(jax.tree.map(np.asarray, error.state))
    checkpoints.close()
    assert int(state.step) == 4 and int(state.nonfinite_steps) == 0


def test_scalars_go_to_tensorboard_when_a_writer_is_importable(tmp_path, monkeypatch):
    """tensorboardX is not installed here: a stand-in module records what fit hands it."""
    written = []

    class RecordingWriter:
        def __init__(self, logdir):
            self.logdir = logdir

        def add_scalar(self, tag, value, step):
            written.append((tag, value, step))

        def close(self):
            written.append("closed")

    fake = types.ModuleType("tensorboardX")
    fake.SummaryWriter = RecordingWriter
    monkeypatch.setitem(sys.modules, "tensorboardX", fake)
    linear_fit(tmp_path, epochs=2, patience=None)
    assert ("validation/loss", 6.25, 1) in written and ("train/loss", -1.0, 2) in written
    assert written[-1] == "closed"


def test_a_validation_iterator_that_drops_rows_is_warned_about(tmp_path):
    valid = BatchIterator(models.data(50, seed=2), 20, shuffle=False)  # drops 10 rows
    with pytest.warns(UserWarning, match="drops its last 10 of 50 rows"):
        flow_fit(tmp_path, nan_batches([], n=2), epochs=1, validation_data=valid)
