"""The pure steps under a plain jit (no axis bound): update, EMA, guard, refusals."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jflows.train as jt
from tests.train import models

FLOW = models.make_flow(axis_name=None)
LOSS_FN = models.make_loss_fn(FLOW)


def step_fn(tx=None):
    return jax.jit(jt.make_train_step(LOSS_FN, tx or models.optimizer()))


def test_train_step_applies_the_optax_update_of_the_loss_gradient():
    state = models.initial_state(FLOW)
    batch = models.data(32)
    new_state, metrics = step_fn()(state, batch)

    @jax.jit
    def reference(params, model_state):  # optax by hand on jax.grad of the flow's NLL
        def nll(params):
            log_prob, new_model_state, _ = FLOW.log_prob_and_state(params, model_state,
                                                                   batch["x"], train=True)
            return -jnp.mean(log_prob), new_model_state

        (loss, new_model_state), grads = jax.value_and_grad(nll, has_aux=True)(params)
        tx = models.optimizer()
        updates, _ = tx.update(grads, tx.init(params), params)
        return optax.apply_updates(params, updates), new_model_state, loss, grads

    expected, expected_model_state, loss, grads = reference(state.params, state.model_state)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 new_state.params, expected)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6),
                 new_state.model_state, expected_model_state)
    np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-6)
    np.testing.assert_allclose(metrics["nll"], metrics["loss"])
    np.testing.assert_allclose(metrics["grad_norm"], optax.tree.norm(grads), rtol=1e-5)
    assert float(metrics["skipped"]) == 0.0
    assert int(new_state.step) == 1 and int(new_state.nonfinite_steps) == 0


def test_ema_follows_the_polyak_recursion():
    decay = 0.75
    step = step_fn()
    state = models.initial_state(FLOW, ema_decay=decay)
    expected = state.params
    for i in range(3):
        state, _ = step(state, models.data(16, seed=i))
        expected = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, expected, state.params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), state.ema_params,
                 expected)


def test_a_nan_batch_is_skipped_counted_and_reported():
    step = step_fn()
    state = models.initial_state(FLOW, ema_decay=0.5)
    state, _ = step(state, models.data(16))
    bad = models.data(16, seed=1)
    bad["x"][3, 1] = np.nan
    after_bad, metrics = step(state, bad)
    assert float(metrics["skipped"]) == 1.0 and not np.isfinite(float(metrics["loss"]))
    for field in ("params", "model_state", "opt_state", "ema_params"):
        jax.tree.map(np.testing.assert_array_equal, getattr(after_bad, field),
                     getattr(state, field))
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(after_bad.params))
    assert (int(after_bad.step), int(after_bad.nonfinite_steps),
            int(after_bad.nonfinite_streak)) == (2, 1, 1)
    after_bad2, _ = step(after_bad, bad)
    assert (int(after_bad2.nonfinite_steps), int(after_bad2.nonfinite_streak)) == (2, 2)
    recovered, metrics = step(after_bad2, models.data(16, seed=2))
    assert float(metrics["skipped"]) == 0.0
    assert (int(recovered.nonfinite_steps), int(recovered.nonfinite_streak)) == (2, 0)


def test_an_infinite_gradient_with_a_finite_loss_is_skipped():
    def loss_fn(params, model_state, batch, key):
        return jnp.sum(jnp.sqrt(params["w"])), (model_state, {})  # d sqrt(w)/dw = inf at 0

    step = jax.jit(jt.make_train_step(loss_fn, optax.sgd(0.1), axis_name=None))
    state = jt.TrainState.create(params={"w": jnp.array([0.0, 1.0])}, optimizer=optax.sgd(0.1),
                                 key=jax.random.key(0))
    new_state, metrics = step(state, {})
    assert np.isfinite(float(metrics["loss"])) and float(metrics["skipped"]) == 1.0
    np.testing.assert_array_equal(new_state.params["w"], [0.0, 1.0])


def test_an_update_that_overflows_the_params_is_skipped():
    """Finite loss and gradient, but a huge step makes inf params: the old ones are kept."""
    def loss_fn(params, model_state, batch, key):
        return jnp.sum((params["w"] - 1.0) ** 2), (model_state, {})

    tx = optax.sgd(1e38)
    step = jax.jit(jt.make_train_step(loss_fn, tx, axis_name=None))
    state = jt.TrainState.create(params={"w": jnp.array([-1e3])}, optimizer=tx,
                                 key=jax.random.key(0))
    new_state, metrics = step(state, {})
    assert np.isfinite(float(metrics["loss"])) and float(metrics["skipped"]) == 1.0
    np.testing.assert_array_equal(new_state.params["w"], [-1e3])


def test_eval_step_uses_the_ema_params_when_kept():
    def eval_fn(params, model_state, batch, key):
        return {"w": params["w"][0]}

    tx = optax.sgd(1.0)
    state = jt.TrainState.create(params={"w": jnp.ones(1)}, optimizer=tx,
                                 key=jax.random.key(0), ema_decay=0.5)
    state = state._replace(params={"w": jnp.full(1, 3.0)})
    assert float(jt.make_eval_step(eval_fn, axis_name=None)(state, {})["w"]) == 1.0
    assert float(jt.make_eval_step(eval_fn, axis_name=None, use_ema=False)(state, {})["w"]) == 3.0


def test_step_keys_depend_on_step_and_stream_only():
    def loss_fn(params, model_state, batch, key):
        noise = jax.random.normal(key)
        return jnp.sum(params["w"]) * 0.0, (model_state, {"noise": noise})

    tx = optax.sgd(0.1)
    step = jax.jit(jt.make_train_step(loss_fn, tx, axis_name=None))
    state = jt.TrainState.create(params={"w": jnp.zeros(1)}, optimizer=tx,
                                 key=jax.random.PRNGKey(3))
    s1, m1 = step(state, {})
    _, m2 = step(s1, {})
    _, m1_again = step(state, {})
    assert float(m1["noise"]) != float(m2["noise"])
    assert float(m1["noise"]) == float(m1_again["noise"])
    typed = jt.TrainState.create(params={"w": jnp.zeros(1)}, optimizer=tx,
                                 key=jax.random.key(3))
    np.testing.assert_array_equal(typed.key, state.key)


@pytest.mark.parametrize(
    "bad_loss, message",
    [
        (lambda p, s, b, k: jnp.sum(p["w"]), r"must return \(loss, \(new_model_state, metrics\)\)"),
        (lambda p, s, b, k: (p["w"], (s, {})), "loss must be a scalar"),
        (lambda p, s, b, k: (jnp.sum(p["w"]), (s, {"m": p["w"]})), "metric 'm' must be a scalar"),
        (lambda p, s, b, k: (jnp.sum(p["w"]), ((s, s), {})), "new_model_state must have"),
    ],
)
def test_bad_loss_outputs_fail_at_trace_time_with_a_clear_message(bad_loss, message):
    tx = optax.sgd(0.1)
    state = jt.TrainState.create(params={"w": jnp.zeros(2)}, model_state={"c": jnp.zeros(())},
                                 optimizer=tx, key=jax.random.key(0))
    with pytest.raises((TypeError, ValueError), match=message):
        jax.eval_shape(jt.make_train_step(bad_loss, tx, axis_name=None), state, {})


def test_the_default_step_runs_under_a_plain_jit_with_the_global_batch_statistics():
    """make_train_step's default axis_name is not bound under jit: no NameError, and the
    batch-norm flow built for data parallelism gives the single-device step's result."""
    parallel_flow = models.make_flow()  # axis_name=DATA_AXIS
    step = jax.jit(jt.make_train_step(models.make_loss_fn(parallel_flow), models.optimizer()))
    state = models.initial_state(parallel_flow)
    batch = models.data(32)
    new_state, metrics = step(state, batch)
    expected, expected_metrics = step_fn()(models.initial_state(FLOW), batch)
    jax.tree.map(np.testing.assert_array_equal, new_state, expected)
    np.testing.assert_array_equal(metrics["loss"], expected_metrics["loss"])


def test_an_optimizer_other_than_the_states_is_refused():
    state = jt.TrainState.create(params={"w": jnp.zeros(2)}, optimizer=optax.adam(0.1),
                                 key=jax.random.key(0))
    step = jt.make_train_step(lambda p, s, b, k: (jnp.sum(p["w"]), (s, {})), optax.sgd(0.1))
    with pytest.raises(ValueError, match="another optimizer"):
        jax.eval_shape(step, state, {})


def test_ema_is_configured_once_in_the_state_and_bad_keys_are_refused():
    tx = optax.sgd(0.1)
    with pytest.raises(TypeError, match="ema_decay"):  # the step has no EMA option to half-set
        jt.make_train_step(lambda p, s, b, k: (jnp.sum(p["w"]), (s, {})), tx, ema_decay=0.9)
    with_ema = jt.TrainState.create(params={"w": jnp.zeros(2)}, optimizer=tx,
                                    key=jax.random.key(0), ema_decay=0.5)
    moved, _ = jax.jit(jt.make_train_step(lambda p, s, b, k: (-jnp.sum(p["w"]), (s, {})), tx))(
        with_ema, {})
    np.testing.assert_allclose(moved.params["w"], [0.1, 0.1])
    np.testing.assert_allclose(moved.ema_params["w"], [0.05, 0.05])  # the EMA moves
    with pytest.raises(ValueError, match="expected a PRNG key"):
        jt.TrainState.create(params={}, optimizer=tx, key=jnp.zeros(3))
    with pytest.raises(ValueError, match="ema_decay must be in"):
        jt.TrainState.create(params={}, optimizer=tx, key=jax.random.key(0), ema_decay=1.5)
