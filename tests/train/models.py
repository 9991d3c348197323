"""A tiny flow with batch norm and the loss/eval functions the training tests share."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jflows.bijectors as jb
import jflows.distributions as jd
import jflows.train as jt

DIM = 3


def make_flow(axis_name=jt.DATA_AXIS):
    """``N(0, I)`` through affine -> batch norm -> leaky relu -> affine -> batch norm."""
    return jd.transformed(
        jd.standard_normal((DIM,)),
        jb.chain(
            jb.affine_tril_lowrank(rank=1),
            jb.batch_norm(decay=0.9, axis_name=axis_name),
            jb.leaky_relu(),
            jb.affine_tril_lowrank(rank=1),
            jb.batch_norm(decay=0.9, axis_name=axis_name),
        ),
    )


def make_loss_fn(flow):
    def loss_fn(params, model_state, batch, key):
        log_prob, model_state, _ = flow.log_prob_and_state(params, model_state, batch["x"],
                                                           train=True, key=key)
        nll = -jnp.mean(log_prob)
        return nll, (model_state, {"nll": nll, "first_x": batch["x"][0, 0]})

    return loss_fn


def make_eval_fn(flow):
    def eval_fn(params, model_state, batch, key):
        log_prob = flow.log_prob(params, model_state, batch["x"])
        return {"loss": -jnp.mean(log_prob)}

    return eval_fn


def optimizer():
    """SGD with momentum: Adam would turn the float rounding of gradients that are zero in
    exact arithmetic (a shift followed by batch norm) into full-size steps, so two
    equally correct runs would differ by far more than float32 tolerance."""
    return optax.sgd(0.05, momentum=0.9)


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    mixing = np.array([[1.0, 0.0, 0.0], [0.8, 0.5, 0.0], [-0.3, 0.4, 0.7]])
    x = rng.normal(size=(n, DIM)) @ mixing.T + np.array([1.0, -2.0, 0.5])
    return {"x": x.astype(np.float32)}


def initial_state(flow, tx=None, ema_decay=None, seed=0):
    params, model_state = flow.init(jax.random.key(seed))
    return jt.TrainState.create(params=params, model_state=model_state,
                                optimizer=tx or optimizer(), key=jax.random.key(seed + 1),
                                ema_decay=ema_decay)


def batches(x, batch_size):
    """A list of consecutive batches (a sequence that ``fit`` repeats every epoch)."""
    n = len(x["x"]) // batch_size
    return [{"x": x["x"][i * batch_size:(i + 1) * batch_size]} for i in range(n)]
