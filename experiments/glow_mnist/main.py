"""Glow on MNIST in bits/dim of the dequantized pixels, trained for a budget of steps.

Data: ``x = (k + u) / 256 - 1/2`` with fresh uniform noise ``u`` per training batch (Glow's
preprocessing, :mod:`jflows.flows.glow`); validation and test use one fixed noise draw.
Bits/dim of the dequantized pixels: ``jflows.units.bits_per_dim(log p(x) - D log 256, D)``
(``jflows.data.pixel_log_prob`` with a zero log-det), ``D = 784``. ActNorm is initialised on
``init_batch_size`` training images before the first step. Training is
:func:`jflows.train.fit` for a budget of ``max_steps`` steps (checkpointed and resumable
under ``out_dir/fit``). Writes ``results.json``, ``glow_mnist.png`` (learning curve and
samples) and ``history.json`` under ``out_dir``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import jflows.data as jdata  # noqa: E402
import jflows.train as jt  # noqa: E402
from experiments.chunked import map_in_chunks  # noqa: E402
from experiments.glow_mnist.config import PUBLISHED_BITS_PER_DIM, Config  # noqa: E402
from jflows.flows.glow import glow  # noqa: E402
from jflows.units import bits_per_dim  # noqa: E402

IMAGE_SHAPE = (28, 28, 1)
NUM_DIMS = 784


def build_model(cfg: Config):
    return glow(IMAGE_SHAPE, cfg.num_levels, cfg.num_steps, hidden_channels=cfg.hidden_channels,
                log_scale_bound=cfg.log_scale_bound, learned_prior=cfg.learned_prior)


def pixel_bits_per_dim(log_prob):
    """Bits/dim of the dequantized pixels on [0, 256)^D from ``log p(x)`` of the model."""
    return bits_per_dim(jdata.pixel_log_prob(log_prob, 0.0, NUM_DIMS), NUM_DIMS)


def dequantize(key, images):
    return jdata.dequantize(key, images) - 0.5


def fixed_dequantized(images: np.ndarray, seed: int) -> np.ndarray:
    """One fixed noise draw (evaluation): ``(k + u) / 256 - 1/2`` as float32."""
    u = np.random.default_rng(seed).random(images.shape)
    return ((images + u) / 256.0 - 0.5).astype(np.float32)


def evaluate(model, params, state, x: np.ndarray, batch_size: int = 500) -> float:
    """Mean bits/dim over the rows of the dequantized ``x``."""
    log_prob = map_in_chunks(model.log_prob, (params, state), (x,), batch_size)
    return float(np.mean(pixel_bits_per_dim(log_prob.astype(np.float64))))


def make_optimizer(cfg: Config):
    schedule = optax.linear_schedule(0.0, cfg.learning_rate, cfg.warmup_steps)
    return optax.chain(optax.clip_by_global_norm(50.0), optax.adam(schedule))


def initial_state(cfg: Config, model, train_x: np.ndarray, tx) -> jt.TrainState:
    """Fresh params, ActNorm initialised on ``init_batch_size`` dequantized training images
    (one ``train=True`` pass sets every ActNorm from its input's moments)."""
    key_init, key_data, key_run = jax.random.split(jax.random.key(cfg.seed), 3)
    params, model_state = jax.jit(model.init)(key_init)
    init_x = dequantize(key_data, jnp.asarray(train_x[: cfg.init_batch_size]))
    model_state = jax.jit(
        lambda p, s, x: model.log_prob_and_state(p, s, x, train=True)[1])(params, model_state,
                                                                          init_x)
    return jt.TrainState.create(params=params, model_state=model_state,
                                optimizer=tx, key=key_run)


def train(cfg: Config, model, train_x: np.ndarray, valid_x: np.ndarray, *, workdir=None,
          progress=True) -> tuple[jt.TrainState, list]:
    """Adam for ``max_steps`` steps (rounded up to a multiple of ``eval_every``) with
    :func:`jflows.train.fit`, validating every ``eval_every`` steps (fit's "epoch" here).

    Returns the final state (the last params, not the best validation's: the run is far
    from overfitting) and one history record per validation: ``step``, ``minutes``
    (training time so far), ``train_bits_per_dim`` (running mean over the window),
    ``validation_bits_per_dim``."""
    tx = make_optimizer(cfg)
    state = initial_state(cfg, model, train_x, tx)

    def loss_fn(params, model_state, batch, key):
        x = dequantize(key, batch["x"])
        log_prob, model_state, _ = model.log_prob_and_state(params, model_state, x, train=True)
        bits = jnp.mean(pixel_bits_per_dim(log_prob))
        return bits, (model_state, {})

    def eval_fn(params, model_state, batch, key):
        return {"bits_per_dim": jnp.mean(pixel_bits_per_dim(
            model.log_prob(params, model_state, batch["x"])))}

    validation = jt.Validation(
        jt.make_eval_step(eval_fn),
        jdata.BatchIterator({"x": valid_x}, 500, shuffle=False, drop_remainder=False),
        restore_best=False)
    result = jt.fit(
        state, jt.make_train_step(loss_fn, tx),
        jdata.BatchIterator({"x": train_x}, cfg.batch_size, seed=cfg.seed),
        epochs=math.ceil(cfg.max_steps / cfg.eval_every), steps_per_epoch=cfg.eval_every,
        validation=validation, workdir=workdir,
        checkpointing=jt.Checkpointing(every=cfg.eval_every, resume=True),
        logging=jt.Logging(every=cfg.eval_every, progress=progress))
    seconds = np.cumsum([record["seconds"] for record in result.history])
    history = [{"step": record["step"], "minutes": float(total) / 60,
                "train_bits_per_dim": record["train"]["loss"],
                "validation_bits_per_dim": record["validation"]["bits_per_dim"]}
               for record, total in zip(result.history, seconds, strict=True)]
    return result.state, history


def draw_samples(model, params, state, cfg: Config, temperatures) -> dict:
    """``num_samples`` images in [0, 1] per temperature ``T``: the base scaled by ``T``,
    pushed forward (one compilation for all temperatures)."""
    @jax.jit
    def sample(params, state, key, temperature):
        eps = temperature * jax.random.normal(key, (cfg.num_samples, *IMAGE_SHAPE))
        return model.bijector.forward(params["bijector"], state["bijector"], eps)[0]

    key = jax.random.key(cfg.seed + 1)
    return {f"samples, T = {t}": np.clip(np.asarray(sample(params, state, key, t)) + 0.5, 0, 1)
            for t in temperatures}


def _tile(images: np.ndarray) -> np.ndarray:
    side = int(math.ceil(math.sqrt(len(images))))
    grid = np.ones((side * 29 + 1, side * 29 + 1))
    for i, image in enumerate(images):
        r, c = divmod(i, side)
        grid[1 + 29 * r: 29 * r + 29, 1 + 29 * c: 29 * c + 29] = image[..., 0]
    return grid


def plot(out: Path, history, samples: dict) -> None:
    fig, axes = plt.subplots(1, 1 + len(samples), figsize=(5 + 4.5 * len(samples), 4.5))
    steps = [h["step"] for h in history]
    axes[0].plot(steps, [h["train_bits_per_dim"] for h in history], label="train (running)")
    axes[0].plot(steps, [h["validation_bits_per_dim"] for h in history], label="validation")
    for (name, value), style in zip(PUBLISHED_BITS_PER_DIM.items(), ("--", ":"), strict=True):
        axes[0].axhline(value, color="k", ls=style, label=f"{name.split(' (')[0]}: {value}")
    highest = max(max(h["train_bits_per_dim"], h["validation_bits_per_dim"]) for h in history)
    axes[0].set(xlabel="step", ylabel="bits/dim (dequantized pixels)", title="Glow on MNIST",
                ylim=(0.9, min(9.0, highest + 0.2)))
    axes[0].legend(fontsize=7)
    for ax, (title, images) in zip(axes[1:], samples.items(), strict=True):
        ax.imshow(_tile(images), cmap="gray", vmin=0, vmax=1)
        ax.set(title=title, xticks=[], yticks=[])
    fig.tight_layout()
    fig.savefig(out / "glow_mnist.png", dpi=90)
    plt.close(fig)


def _subset(split: dict, n: int | None) -> np.ndarray:
    return split["x"] if n is None else split["x"][:n]


def main(cfg: Config, *, out_dir, data_path=None, data_dir=None, progress=True) -> dict:
    """Train, test, sample and plot; checkpoints and metrics of the run go to
    ``out_dir/fit`` (a rerun resumes there: after an interruption, or with a larger
    ``max_steps`` to train on)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = jdata.mnist(data_dir, path=data_path)
    train_x = _subset(data.train, cfg.max_train_examples)
    valid_x = fixed_dequantized(_subset(data.validation, cfg.eval_examples), cfg.seed + 2)
    test_x = fixed_dequantized(_subset(data.test, cfg.test_examples), cfg.seed + 3)
    model = build_model(cfg)
    state, history = train(cfg, model, train_x, valid_x, workdir=out / "fit", progress=progress)
    minutes = history[-1]["minutes"]
    params, model_state = state.params, state.model_state
    test_bits = evaluate(model, params, model_state, test_x)
    samples = draw_samples(model, params, model_state, cfg, (1.0, cfg.temperature))
    plot(out, history, samples)
    results = {
        "config": dataclasses.asdict(cfg),
        "test_bits_per_dim": test_bits,
        "test_examples": len(test_x),
        "validation_bits_per_dim": history[-1]["validation_bits_per_dim"],
        "steps": history[-1]["step"],
        "train_minutes": minutes,
        "num_params": int(sum(x.size for x in jax.tree.leaves(params))),
        "published_bits_per_dim": PUBLISHED_BITS_PER_DIM,
        "devices": [d.device_kind for d in jax.devices()],
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "history.json").write_text(json.dumps(history, indent=2))
    if progress:
        print(f"test bits/dim {test_bits:.4f} on {len(test_x)} images after "
              f"{results['steps']} steps ({minutes:.1f} min)")
    return results
