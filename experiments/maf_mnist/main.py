"""Train a MADE / MAF / MAF MoG on MNIST in logit space; report nats, bits/dim, samples."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import jflows.data as jdata  # noqa: E402
import jflows.train as jt  # noqa: E402
from experiments.maf_mnist.config import MODELS, PAPER_TEST_LOG_LIKELIHOOD, Config  # noqa: E402
from experiments.maf_training import (  # noqa: E402
    fit_flow,
    log_likelihoods,
    mean_and_error,
    optimizer,
    set_batch_norm_from_data,
)
from jflows.flows import gaussian_made, maf, maf_mog  # noqa: E402


def make_flow(config: Config, dim: int, sampling: str | None = None):
    num_layers, _, components = MODELS[config.model]
    shared = dict(activation=config.activation, sampling=sampling or config.sampling)

    def build(axis_name):
        if config.model == "made":
            return gaussian_made(dim, config.hidden_sizes, **shared)
        if components is None:
            return maf(dim, num_layers, config.hidden_sizes, axis_name=axis_name, **shared)
        return maf_mog(dim, num_layers, config.hidden_sizes, num_components=components,
                       axis_name=axis_name, **shared)
    return build


def sample_grid(flow, params, state, config: Config, lam: float):
    """``num_samples`` images in [0, 1] and the seconds sampling took (jitted, compiled)."""
    sample = jax.jit(lambda key: flow.sample(params, state, key, (config.num_samples,)))
    key = jax.random.key(config.seed + 1)
    jax.block_until_ready(sample(key))
    start = time.perf_counter()
    logits = np.asarray(jax.block_until_ready(sample(key)))
    seconds = time.perf_counter() - start
    images = np.clip(jdata.inverse_logit_transform(logits, lam), 0.0, 1.0)
    return images.reshape(-1, 28, 28), seconds


def tile(images: np.ndarray, side: int) -> np.ndarray:
    """28 x 28 images on a ``side`` x ``side`` grid with 1-pixel white borders."""
    grid = np.ones((side * 29 + 1, side * 29 + 1))
    for i, image in enumerate(images):
        r, c = divmod(i, side)
        grid[1 + 29 * r: 29 * r + 29, 1 + 29 * c: 29 * c + 29] = image
    return grid


def plot(out: Path, images: np.ndarray, history, config: Config) -> None:
    side = int(math.ceil(math.sqrt(len(images))))
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    axes[0].imshow(tile(images, side), cmap="gray", vmin=0, vmax=1)
    axes[0].set(title=f"{config.model} samples", xticks=[], yticks=[])
    epochs = [h["epoch"] for h in history]
    axes[1].plot(epochs, [-h["train"]["loss"] for h in history], label="train")
    if history and "validation" in history[0]:
        axes[1].plot(epochs, [-h["validation"]["loss"] for h in history], label="validation")
    axes[1].axhline(PAPER_TEST_LOG_LIKELIHOOD[config.model][0], color="k", ls="--",
                    label="paper (test)")
    axes[1].set(xlabel="epoch", ylabel="log-likelihood, logit space (nats)")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(out / f"{config.model}.png", dpi=100)
    plt.close(fig)


def resample(config: Config) -> dict:
    """Samples from the run's latest checkpoint, by the incremental evaluation and by the
    ``D``-pass loop (same key: the same samples up to float rounding), timed."""
    out = Path(config.out_dir)
    data = jdata.mnist(config.data_dir, path=config.data_path, preprocessing="logit")
    lam, dim = data.info["lambda"], data.info["num_dims"]
    flows = {s: make_flow(config, dim, sampling=s)(None) for s in ("auto", "passes")}
    params, model_state = flows["auto"].init(jax.random.key(config.seed))
    template = jt.TrainState.create(
        params=params, model_state=model_state, key=jax.random.key(config.seed),
        optimizer=optimizer(MODELS[config.model][1], config.weight_decay))
    checkpoints = out / config.model / "fit" / "checkpoints"
    restored = jt.Checkpoints(checkpoints.resolve()).restore_latest(template)
    if restored is None:
        raise FileNotFoundError(f"no checkpoint in {checkpoints}: train the model first.")
    state, _ = restored
    model_state = set_batch_norm_from_data(flows["auto"], state.params, state.model_state,
                                           data.train["x"])
    grids = {s: sample_grid(flow, state.params, model_state, config, lam)
             for s, flow in flows.items()}
    difference = float(np.max(np.abs(grids["auto"][0] - grids["passes"][0])))
    side = int(math.ceil(math.sqrt(config.num_samples)))
    fig, axes = plt.subplots(1, 2, figsize=(12, 6))
    for ax, (name, (images, seconds)) in zip(axes, grids.items(), strict=True):
        ax.imshow(tile(images, side), cmap="gray", vmin=0, vmax=1)
        what = "incremental MADE evaluation" if name == "auto" else "D-pass loop"
        ax.set(title=f"{config.model}, {what}: {seconds:.2f} s", xticks=[], yticks=[])
    fig.tight_layout()
    fig.savefig(out / f"{config.model}_samples.png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    results = {"model": config.model, "checkpoint_step": int(state.step),
               "num_samples": config.num_samples,
               "seconds": {s: g[1] for s, g in grids.items()},
               "max_pixel_difference": difference}
    (out / f"{config.model}_samples.json").write_text(json.dumps(results, indent=2))
    print(f"{config.num_samples} samples from step {int(state.step)}: incremental "
          f"{grids['auto'][1]:.2f} s, D passes {grids['passes'][1]:.2f} s; largest pixel "
          f"difference {difference:.2e}")
    return results


def main(config: Config) -> dict:
    if config.model not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {config.model!r}.")
    if config.resample:
        return resample(config)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = jdata.mnist(config.data_dir, path=config.data_path, preprocessing="logit")
    lam, dim = data.info["lambda"], data.info["num_dims"]
    train = {k: v[: config.train_subset] for k, v in data.train.items()}
    splits = {"train": train, "validation": data.validation, "test": data.test}
    make = make_flow(config, dim)
    params, state, result, seconds = fit_flow(
        make, train["x"], data.validation["x"], learning_rate=MODELS[config.model][1],
        batch_size=config.batch_size, epochs=config.max_epochs, patience=config.patience,
        weight_decay=config.weight_decay, seed=config.seed, workdir=out / config.model / "fit",
        max_steps=config.max_steps)
    flow = make(None)
    scores = {}
    for name, split in splits.items():
        log_prob = log_likelihoods(flow, params, state, split["x"], batch_size=500)
        bits = jdata.logit_nats_to_bits_per_dim(log_prob, split["logdet"], dim)
        scores[name] = {"nats_logit_space": mean_and_error(log_prob),
                        "bits_per_dim": mean_and_error(bits)}
    images, sample_seconds = sample_grid(flow, params, state, config, lam)
    plot(out, images, result.history, config)
    paper = PAPER_TEST_LOG_LIKELIHOOD[config.model]
    results = {
        "model": config.model, "scores": scores,
        "paper_test_nats_logit_space": paper,
        "epochs_trained": len(result.history), "steps": int(result.last_state.step),
        "best_step": result.best_step, "stop_reason": result.stop_reason,
        "train_seconds": seconds, "sample_seconds": sample_seconds,
        "num_samples": config.num_samples, "train_rows": len(train["x"]),
        "devices": [d.device_kind for d in jax.devices()],
    }
    (out / f"{config.model}.json").write_text(json.dumps(results, indent=2))
    for name, s in scores.items():
        (m, e), (b, be) = s["nats_logit_space"], s["bits_per_dim"]
        print(f"{name:>10}: {m:9.1f} +- {e:.1f} nats (logit space), {b:.3f} +- {be:.3f} bits/dim")
    print(f"paper (test): {paper[0]} +- {paper[1]} nats; trained {len(result.history)} epochs "
          f"({int(result.last_state.step)} steps) in {seconds / 60:.1f} min "
          f"({result.stop_reason}); {config.num_samples} samples in {sample_seconds:.2f} s")
    return results
