"""Train MAF(5) on the committed MINIBOONE sample; compare it with a Gaussian; sample it.

Steps: read the sample (checking its SHA-256 when it is the committed file), apply the
MAF paper's MINIBOONE preprocessing (:func:`jflows.data.uci.miniboone_preprocess`: last
10 % test, last 10 % of the rest validation, standardise with train+validation
statistics), fit a full-covariance Gaussian to the training split by maximum likelihood,
train MAF(5) with :func:`jflows.train.fit` (through ``experiments.maf_training``:
validation, early stopping, checkpoints, progress bar), score both models on every split,
draw samples (the default incremental MADE sampling), and write ``results.json``,
``learning_curve.png`` and ``samples.png``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.maf_demo.config import DATA_FILE, DATA_SHA256, DATA_SHAPE, Config  # noqa: E402
from experiments.maf_training import fit_flow, log_likelihoods, mean_and_error  # noqa: E402
from jflows.data import CorruptDataError  # noqa: E402
from jflows.data.uci import miniboone_preprocess  # noqa: E402
from jflows.flows import maf  # noqa: E402


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_sample(path) -> tuple[np.ndarray, str]:
    """The raw rows (key ``x``) of an ``.npz`` holding rows of MAF's MINIBOONE ``data.npy``,
    and the file's SHA-256; the committed file must match :data:`DATA_SHA256`."""
    path = Path(path)
    digest = sha256(path)
    if path.resolve() == DATA_FILE and digest != DATA_SHA256:
        raise CorruptDataError(f"{path}: SHA-256 {digest}, expected {DATA_SHA256} "
                               "(the committed MINIBOONE sample was modified or truncated).")
    with np.load(path) as f:
        x = np.asarray(f["x"], dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != DATA_SHAPE[1] or not np.all(np.isfinite(x)):
        raise CorruptDataError(f"{path}: expected finite (N, 43) rows, got {x.shape}.")
    return x, digest


def make_flow(config: Config, dim: int):
    def build(axis_name):
        return maf(dim, config.num_layers, config.hidden_sizes, activation=config.activation,
                   batch_norm=config.batch_norm, axis_name=axis_name)
    return build


class Gaussian:
    """Full-covariance Gaussian fit by maximum likelihood (sample mean, covariance with
    ddof 0), in float64."""

    def __init__(self, x: np.ndarray):
        x = np.asarray(x, np.float64)
        self.mean = x.mean(axis=0)
        self.chol = np.linalg.cholesky(np.cov(x, rowvar=False, bias=True))

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        z = np.linalg.solve(self.chol, (np.asarray(x, np.float64) - self.mean).T).T
        d = self.mean.size
        return (-0.5 * np.sum(z**2, axis=1) - np.sum(np.log(np.diag(self.chol)))
                - 0.5 * d * np.log(2 * np.pi))

    def sample(self, n: int, seed: int) -> np.ndarray:
        z = np.random.default_rng(seed).standard_normal((n, self.mean.size))
        return self.mean + z @ self.chol.T

    @property
    def num_params(self) -> int:
        d = self.mean.size
        return d + d * (d + 1) // 2


def _limits(x: np.ndarray) -> tuple[float, float]:
    lo, hi = np.quantile(x, [0.005, 0.995])
    pad = 0.1 * (hi - lo)
    return float(lo - pad), float(hi + pad)


def plot_learning_curve(path: Path, history, gaussian: dict, maf_scores: dict,
                        best_step: int | None, steps_per_epoch: int, name: str) -> None:
    fig, ax = plt.subplots(figsize=(8, 5))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [-h["train"]["loss"] for h in history], label=f"{name} train (running)")
    if history and "validation" in history[0]:
        ax.plot(epochs, [-h["validation"]["loss"] for h in history],
                label=f"{name} validation (batch statistics)")
    if best_step is not None:
        ax.axvline(best_step / steps_per_epoch, color="grey", ls=":", label="best epoch (kept)")
    ax.axhline(maf_scores["test"][0], color="C2", ls="-.", label=f"{name} test (final)")
    ax.axhline(gaussian["train"][0], color="k", ls="--", lw=1, label="Gaussian train")
    ax.axhline(gaussian["test"][0], color="k", ls=":", lw=1.5, label="Gaussian test")
    finite = [-h["train"]["loss"] for h in history if np.isfinite(h["train"]["loss"])]
    bottom = min([gaussian["test"][0], maf_scores["test"][0]] + finite[len(finite) // 10:])
    top = max([gaussian["train"][0], maf_scores["test"][0]] + finite)
    ax.set_ylim(bottom - 5, top + 5)
    ax.set(xlabel="epoch", ylabel="mean log-likelihood (nats)",
           title=f"{name} vs full-covariance Gaussian on a real MINIBOONE sample")
    ax.legend(loc="lower right", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_samples(path: Path, data: np.ndarray, flow_samples: np.ndarray,
                 gaussian_samples: np.ndarray, gaussian: Gaussian, config: Config) -> None:
    """Row 1: marginals (histograms of data and MAF samples, the Gaussian's density);
    rows 2-4: dimension pairs of the data, the MAF samples and the Gaussian samples."""
    cols = max(len(config.plot_dims), len(config.plot_pairs))
    fig, axes = plt.subplots(4, cols, figsize=(4 * cols, 15), squeeze=False)
    for ax in axes[0, len(config.plot_dims):]:
        ax.axis("off")
    for ax, d in zip(axes[0], config.plot_dims, strict=False):
        lo, hi = _limits(data[:, d])
        bins = np.linspace(lo, hi, 50)
        ax.hist(data[:, d], bins=bins, density=True, alpha=0.5, label="training data")
        ax.hist(flow_samples[:, d], bins=bins, density=True, histtype="step", lw=1.5,
                label="MAF samples")
        grid = np.linspace(lo, hi, 300)
        sd = np.sqrt(np.sum(gaussian.chol[d] ** 2))
        ax.plot(grid, np.exp(-0.5 * ((grid - gaussian.mean[d]) / sd) ** 2)
                / (sd * np.sqrt(2 * np.pi)), "k--", lw=1, label="Gaussian")
        ax.set(title=f"marginal of dimension {d}", xlim=(lo, hi))
        ax.legend(fontsize=8)
    rows = (("training data", data, "C0"), ("MAF samples", flow_samples, "C1"),
            ("Gaussian samples", gaussian_samples, "k"))
    for r, (name, points, color) in enumerate(rows, start=1):
        for ax in axes[r, len(config.plot_pairs):]:
            ax.axis("off")
        for ax, (i, j) in zip(axes[r], config.plot_pairs, strict=False):
            ax.scatter(points[:, i], points[:, j], s=2, alpha=0.4, color=color)
            ax.set(title=f"{name}: dims {i}, {j}", xlim=_limits(data[:, i]),
                   ylim=_limits(data[:, j]), xlabel=f"x{i}", ylabel=f"x{j}")
    fig.suptitle(f"MINIBOONE sample (standardised): {len(data)} training rows, "
                 f"{len(flow_samples)} samples from each model", y=0.995)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(config: Config) -> dict:
    start = time.perf_counter()
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    raw, digest = load_sample(config.data_path)
    splits = dict(zip(("train", "validation", "test"), miniboone_preprocess(raw), strict=True))
    dim = raw.shape[1]

    gaussian = Gaussian(splits["train"])
    gaussian_ll = {k: gaussian.log_prob(v) for k, v in splits.items()}

    x32 = {k: v.astype(np.float32) for k, v in splits.items()}
    make = make_flow(config, dim)
    workdir = out / "fit"
    shutil.rmtree(workdir, ignore_errors=True)  # a demo run always starts from scratch
    params, state, result, train_seconds = fit_flow(
        make, x32["train"], x32["validation"], learning_rate=config.learning_rate,
        batch_size=config.batch_size, epochs=config.max_epochs, patience=config.patience,
        weight_decay=config.weight_decay, seed=config.seed, workdir=workdir,
        max_steps=config.max_steps, progress=config.progress)
    flow = make(None)
    maf_ll = {k: log_likelihoods(flow, params, state, v) for k, v in x32.items()}
    maf_scores = {k: mean_and_error(v) for k, v in maf_ll.items()}
    gaussian_scores = {k: mean_and_error(v) for k, v in gaussian_ll.items()}
    difference = maf_ll["test"] - gaussian_ll["test"]

    draw = jax.jit(lambda p, s, key: flow.sample(p, s, key, (config.num_samples,)))
    sample_seconds = []
    for i in range(2):  # the first call compiles, the second is the sampling itself
        t = time.perf_counter()
        samples = np.asarray(draw(params, state, jax.random.key(config.seed + 1 + i)))
        sample_seconds.append(time.perf_counter() - t)
    gaussian_samples = gaussian.sample(config.num_samples, config.seed + 1)

    steps_per_epoch = len(splits["train"]) // config.batch_size
    plot_learning_curve(out / "learning_curve.png", result.history, gaussian_scores,
                        maf_scores, result.best_step, steps_per_epoch, f"MAF({config.num_layers})")
    plot_samples(out / "samples.png", splits["train"], samples, gaussian_samples, gaussian,
                 config)

    as_dict = lambda s: {k: {"mean": m, "two_std_errors": e} for k, (m, e) in s.items()}
    num_params = sum(int(np.size(p)) for p in jax.tree_util.tree_leaves(params))
    results = {
        "data": {
            "file": str(config.data_path), "sha256": digest, "raw_shape": list(raw.shape),
            "rows": {k: len(v) for k, v in splits.items()}, "dimensions": dim,
            "preprocessing": "MAF MINIBOONE (jflows.data.uci.miniboone_preprocess): last 10% "
                             "test, last 10% of the rest validation, standardise with "
                             "train+validation mean/std (ddof 0)",
        },
        "log_likelihood": {"maf": as_dict(maf_scores), "gaussian": as_dict(gaussian_scores)},
        "test_median_log_likelihood": {"maf": float(np.median(maf_ll["test"])),
                                       "gaussian": float(np.median(gaussian_ll["test"]))},
        "test_maf_minus_gaussian": {"mean": mean_and_error(difference)[0],
                                    "two_std_errors": mean_and_error(difference)[1],
                                    "fraction_of_rows_maf_higher": float(np.mean(difference > 0))},
        "maf": {"num_layers": config.num_layers, "hidden_sizes": list(config.hidden_sizes),
                "batch_norm": config.batch_norm, "num_params": num_params,
                "epochs_trained": len(result.history), "steps": int(result.last_state.step),
                "best_step": result.best_step, "stop_reason": result.stop_reason,
                "train_seconds": train_seconds},
        "gaussian": {"num_params": gaussian.num_params},
        "samples": {"num_samples": config.num_samples,
                    "seconds_first_call_with_compile": sample_seconds[0],
                    "seconds_second_call": sample_seconds[1],
                    "all_finite": bool(np.all(np.isfinite(samples)))},
        "config": {k: v for k, v in vars(config).items() if k != "data_path"},
        "devices": [d.device_kind for d in jax.devices()],
        "total_seconds": time.perf_counter() - start,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))

    print(f"MINIBOONE sample: {len(raw)} rows x {dim} dims -> "
          + " / ".join(f"{len(v)} {k}" for k, v in splits.items()))
    print("mean log-likelihood (nats, +- 2 standard errors):")
    print(f"  {'split':>10}  {f'MAF({config.num_layers})':>18}  {'Gaussian':>18}")
    for k in splits:
        (m, e), (gm, ge) = maf_scores[k], gaussian_scores[k]
        print(f"  {k:>10}  {m:9.2f} +- {e:5.2f}  {gm:9.2f} +- {ge:5.2f}")
    m, e = mean_and_error(difference)
    print(f"test, MAF minus Gaussian (paired): {m:.2f} +- {e:.2f} nats; MAF higher on "
          f"{np.mean(difference > 0):.0%} of test rows; medians "
          f"{np.median(maf_ll['test']):.2f} vs {np.median(gaussian_ll['test']):.2f}")
    print(f"trained {len(result.history)} epochs ({int(result.last_state.step)} steps, best "
          f"step {result.best_step}, {result.stop_reason}) in {train_seconds:.1f} s; "
          f"{config.num_samples} samples in {sample_seconds[1]:.2f} s "
          f"({sample_seconds[0]:.2f} s with compilation); total {results['total_seconds']:.1f} s")
    print(f"wrote {out}/results.json, learning_curve.png, samples.png and fit/")
    return results
