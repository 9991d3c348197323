"""Train MAF(10) on GAS and report train / validation / test mean log-likelihoods."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import jflows.data as jdata  # noqa: E402
from experiments.maf_gas.config import PAPER_TEST_LOG_LIKELIHOOD, Config  # noqa: E402
from experiments.maf_training import fit_flow, log_likelihoods, mean_and_error  # noqa: E402
from jflows.flows import maf  # noqa: E402


def make_flow(config: Config, dim: int):
    def build(axis_name):
        return maf(dim, config.num_layers, config.hidden_sizes, activation=config.activation,
                   batch_norm=config.batch_norm, axis_name=axis_name)
    return build


def plot(out: Path, data: np.ndarray, samples: np.ndarray, history) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    epochs = [h["epoch"] for h in history]
    axes[0].plot(epochs, [-h["train"]["loss"] for h in history], label="train")
    if history and "validation" in history[0]:
        axes[0].plot(epochs, [-h["validation"]["loss"] for h in history], label="validation")
    axes[0].axhline(PAPER_TEST_LOG_LIKELIHOOD[0], color="k", ls="--", label="paper (test)")
    axes[0].set(xlabel="epoch", ylabel="mean log-likelihood (nats)", title="MAF(10) on GAS")
    axes[0].legend()
    for ax, (what, points) in zip(axes[1:], (("test data", data), ("MAF samples", samples)),
                                  strict=True):
        ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.4)
        ax.set(title=f"{what}: dimensions 0 and 1", xlim=(-4, 4), ylim=(-4, 4))
    fig.tight_layout()
    fig.savefig(out / "gas.png", dpi=100)
    plt.close(fig)


def main(config: Config) -> dict:
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = jdata.gas(config.data_dir, source=config.source, path=config.data_path)
    splits = {"train": data.train["x"], "validation": data.validation["x"],
              "test": data.test["x"]}
    splits = {k: v.astype(np.float32) for k, v in splits.items()}
    dim = splits["train"].shape[1]
    make = make_flow(config, dim)
    params, state, result, seconds = fit_flow(
        make, splits["train"], splits["validation"], learning_rate=config.learning_rate,
        batch_size=config.batch_size, epochs=config.max_epochs, patience=config.patience,
        weight_decay=config.weight_decay, seed=config.seed, workdir=out / "fit",
        max_steps=config.max_steps)
    flow = make(None)
    scores = {name: mean_and_error(log_likelihoods(flow, params, state, x))
              for name, x in splits.items()}
    samples = np.asarray(flow.sample(params, state, jax.random.key(config.seed + 1),
                                     (config.num_samples,)))
    plot(out, splits["test"], samples, result.history)
    results = {
        "log_likelihood": {k: {"mean": m, "two_std_errors": e} for k, (m, e) in scores.items()},
        "paper_test_log_likelihood": {"mean": PAPER_TEST_LOG_LIKELIHOOD[0],
                                      "two_std_errors": PAPER_TEST_LOG_LIKELIHOOD[1]},
        "rows": {k: len(v) for k, v in splits.items()},
        "dimensions": dim,
        "epochs_trained": len(result.history),
        "best_step": result.best_step,
        "stop_reason": result.stop_reason,
        "train_seconds": seconds,
        "devices": [d.device_kind for d in jax.devices()],
        "data": data.info.get("preprocessing"),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    for name, (m, e) in scores.items():
        print(f"{name:>10}: {m:8.3f} +- {e:.3f} nats")
    print(f"paper (test): {PAPER_TEST_LOG_LIKELIHOOD[0]} +- {PAPER_TEST_LOG_LIKELIHOOD[1]}; "
          f"trained {len(result.history)} epochs in {seconds:.0f} s ({result.stop_reason})")
    return results
