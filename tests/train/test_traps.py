"""fit's options and refusals: no configuration silently loses work or trains the wrong
thing (issue 13's traps), hooks, and the one-call fit_to_data."""

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jflows.flows as jf
import jflows.train as jt
from tests.train import models

TX = optax.sgd(1.0)
TRAIN = [{"x": np.zeros((4, 1), np.float32)}]  # one batch per epoch
QUIET = jt.Logging(progress=False)


def linear_loss(params, model_state, batch, key):
    return -jnp.sum(params["w"]) + 0.0 * jnp.sum(batch["x"]), (model_state, {})


def linear_state(params=None):
    return jt.TrainState.create(params=params or {"w": jnp.zeros(1)}, optimizer=TX,
                                key=jax.random.key(0))


def linear_fit(workdir, *, state=None, eval_fn=None, monitor=None, **kwargs):
    eval_fn = eval_fn or (lambda p, s, b, k: {"nll": (p["w"][0] - 2.5) ** 2})
    validation = jt.Validation(jt.make_eval_step(eval_fn), TRAIN, monitor=monitor)
    return jt.fit(state or linear_state(), jt.make_train_step(linear_loss, TX), TRAIN,
                  epochs=4, validation=validation, workdir=workdir, logging=QUIET, **kwargs)


@pytest.mark.parametrize(("build", "message"), [
    (lambda: jt.Checkpointing(every=0), "every must be a positive integer or None, got 0"),
    (lambda: jt.Checkpointing(every=-5), "got -5"),
    (lambda: jt.Checkpointing(every=2.5), "got 2.5"),
    (lambda: jt.Checkpointing(keep=0), "keep must be a positive integer"),
    (lambda: jt.Checkpointing(resume=True, overwrite=True), "contradict"),
    (lambda: jt.Logging(every=0), "every must be a positive integer"),
    (lambda: jt.Parallel(prefetch=-1), "prefetch must be"),
    (lambda: jt.Validation(lambda *a: {}, TRAIN, patience=0), "patience must be"),
])
def test_bad_options_fail_when_built(build, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build()


def test_fit_refuses_options_it_cannot_honour(tmp_path):
    step = jt.make_train_step(linear_loss, TX)
    with pytest.raises(ValueError, match="needs the workdir"):
        jt.fit(linear_state(), step, TRAIN, epochs=1, checkpointing=jt.Checkpointing(every=1))
    with pytest.raises(TypeError, match="logging must be a jflows.train.Logging"):
        jt.fit(linear_state(), step, TRAIN, epochs=1, logging={"every": 1})
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        jt.fit(linear_state(), step, TRAIN, epochs=0)


def test_the_monitor_defaults_to_the_only_metric_and_a_wrong_one_fails_before_training(
        tmp_path):
    result = linear_fit(None)  # the eval step reports only "nll"
    assert result.best_metric == 0.25 and result.best_step == 2
    two = lambda p, s, b, k: {"nll": p["w"][0], "bpd": p["w"][0]}  # noqa: E731
    with pytest.raises(ValueError, match=r"none is called 'loss' \(\['bpd', 'nll'\]\)"):
        linear_fit(None, eval_fn=two)
    with pytest.raises(ValueError, match=r"monitor='los'\) is not among .*\['nll'\]"):
        linear_fit(tmp_path, monitor="los")
    assert not (tmp_path / "metrics.jsonl").exists()  # refused before any step


def test_history_records_seconds_per_epoch():
    result = linear_fit(None)
    assert all(record["seconds"] > 0 and record["eval_seconds"] > 0
               for record in result.history)


def test_resuming_another_models_run_is_refused_and_deletes_nothing(tmp_path, capsys):
    linear_fit(tmp_path, checkpointing=jt.Checkpointing(every=1))
    checkpoints = jt.Checkpoints(tmp_path / "checkpoints")
    before = (checkpoints.latest_steps(), checkpoints.best_steps())
    checkpoints.close()
    records = (tmp_path / "metrics.jsonl").read_text()
    other = linear_state({"w": jnp.zeros(3)})
    with pytest.raises(jt.IncompatibleCheckpointError,
                       match=r"\['w'\] is \(1,\) float32 in the checkpoint, \(3,\) float32"):
        linear_fit(tmp_path, state=other, checkpointing=jt.Checkpointing(resume=True))
    checkpoints = jt.Checkpoints(tmp_path / "checkpoints")
    assert (checkpoints.latest_steps(), checkpoints.best_steps()) == before
    checkpoints.close()
    assert (tmp_path / "metrics.jsonl").read_text() == records

    again = linear_fit(tmp_path, checkpointing=jt.Checkpointing(resume=True))
    assert "fit: resumed from step 4 (epoch 5)" in capsys.readouterr().out
    assert len(again.history) == 4

    fresh = linear_fit(tmp_path, state=other, checkpointing=jt.Checkpointing(overwrite=True))
    assert fresh.last_state.params["w"].shape == (3,)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in records if r["split"] == "train"] == [0.0, -3.0, -6.0, -9.0]


def test_a_workdir_whose_checkpoints_are_all_corrupt_is_refused_not_overwritten(tmp_path):
    linear_fit(tmp_path, checkpointing=jt.Checkpointing(every=2))
    for step_dir in (tmp_path / "checkpoints" / "latest").iterdir():
        for f in (step_dir / "meta").iterdir():
            f.unlink()
    with pytest.warns(jt.CheckpointWarning), pytest.raises(jt.CorruptCheckpointError,
                                                           match="nothing was deleted"):
        linear_fit(tmp_path, checkpointing=jt.Checkpointing(resume=True))
    assert sorted(p.name for p in (tmp_path / "checkpoints" / "latest").iterdir()) == ["2", "4"]


class Doubler(jt.Hook):
    """before_eval: evaluate (and keep as best) the params doubled; records the events."""

    def __init__(self):
        self.events = []

    def on_start(self, run):
        self.events.append(("start", run.total_steps, run.monitor))

    def before_eval(self, state):
        self.events.append("before_eval")
        return state._replace(params=jax.tree.map(lambda w: 2 * w, state.params))

    def on_epoch(self, record):
        self.events.append(("epoch", record["validation"]["w"]))

    def on_end(self):
        self.events.append("end")


def test_before_eval_changes_what_is_evaluated_and_kept_but_not_training():
    hook = Doubler()
    result = linear_fit(None, eval_fn=lambda p, s, b, k: {"loss": (p["w"][0] - 4.0) ** 2,
                                                          "w": p["w"][0]}, hooks=[hook])
    assert [e[1] for e in hook.events if e[0] == "epoch"] == [2.0, 4.0, 6.0, 8.0]
    assert hook.events[0] == ("start", 4, "loss") and hook.events[-1] == "end"
    assert float(result.last_state.params["w"][0]) == 4.0  # training never saw the doubling
    assert float(result.state.params["w"][0]) == 4.0 and result.best_step == 2  # 2 * 2


def test_recompute_batch_norm_sets_the_training_set_statistics():
    flow = models.make_flow(axis_name=None)
    x = models.data(256)["x"]
    params, state = flow.init(jax.random.key(0))
    train_state = jt.TrainState.create(params=params, model_state=state, optimizer=TX,
                                       key=jax.random.key(0))
    hooked = jt.RecomputeBatchNorm(flow, x).before_eval(train_state)
    # evaluation with the recomputed statistics == the train-mode pass over all of x
    eval_lp = flow.log_prob(hooked.params, hooked.model_state, x)
    train_lp, _, _ = flow.log_prob_and_state(params, state, x, train=True)
    np.testing.assert_allclose(eval_lp, train_lp, rtol=1e-4, atol=1e-4)


def test_fit_to_data_beats_the_gaussian_and_checks_its_input():
    rng = np.random.default_rng(0)
    radius = 2.0 + 0.1 * rng.normal(size=3000)
    angle = rng.uniform(0, 2 * np.pi, size=3000)
    ring = np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1).astype(np.float32)
    flow = jf.maf(2, num_layers=3, hidden_sizes=(32, 32))
    params, state, history = jt.fit_to_data(jax.random.key(0), flow, ring[:2500],
                                            batch_size=64, learning_rate=3e-3, max_epochs=30,
                                            progress=False)
    test = jnp.asarray(ring[2500:])
    flow_nll = -float(flow.log_prob(params, state, test).mean())
    gaussian = jax.scipy.stats.multivariate_normal.logpdf(test, ring.mean(0), np.cov(ring.T))
    assert flow_nll < -float(gaussian.mean()) - 0.3
    assert 2 <= len(history) <= 30 and "validation" in history[0]
    with pytest.raises(ValueError, match=r"x must have shape \(rows,\) \+ event_shape = "
                                         r"\(rows, 2\), got \(10, 3\)"):
        jt.fit_to_data(jax.random.key(0), flow, np.zeros((10, 3)))
    with pytest.raises(ValueError, match="validation_fraction must be in"):
        jt.fit_to_data(jax.random.key(0), flow, ring, validation_fraction=1.0)
    with pytest.raises(ValueError, match="got cond for an unconditional|unconditional"):
        jt.fit_to_data(jax.random.key(0), flow, ring, cond=np.zeros((3000, 1)))


def test_fit_to_data_trains_a_conditional_model():
    rng = np.random.default_rng(1)
    label = rng.integers(0, 2, size=2000)
    x = (rng.normal(size=(2000, 1)) + 4.0 * label[:, None]).astype(np.float32)
    cond = np.eye(2, dtype=np.float32)[label]
    flow = jf.maf(1, num_layers=2, hidden_sizes=(16,), cond_shape=(2,))
    params, state, _ = jt.fit_to_data(jax.random.key(0), flow, x, cond=cond, max_epochs=20,
                                      progress=False)
    at = jnp.array([[0.0], [4.0]])
    log_prob = flow.log_prob(params, state, jnp.concatenate([at, at]),
                             cond=jnp.asarray(np.eye(2)[[0, 0, 1, 1]], jnp.float32))
    assert log_prob[0] > log_prob[1] + 2 and log_prob[3] > log_prob[2] + 2  # each at its mode
