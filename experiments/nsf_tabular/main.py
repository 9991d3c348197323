"""Train MAF, RealNVP, NSF-autoregressive and NSF-coupling on the committed MINIBOONE sample
and on 2-D toys; score them on held-out rows; sample them.

MINIBOONE: the sample of ``experiments/maf_demo`` (its loader checks the SHA-256) with
the MAF paper's split and standardisation (:func:`jflows.data.uci.miniboone_preprocess`).
Toys (:mod:`jflows.data.toy2d`): independent train / validation / test draws, standardised
with the training mean and std; log-likelihoods are reported in the original units
(``log p(x) = log p_std((x - m) / s) - sum log s``). Training is
``experiments.maf_training.fit_flow`` (Adam, L2, early stopping on validation, batch-norm
statistics from the training split at the end) for every model alike.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.maf_demo.main import load_sample  # noqa: E402
from experiments.maf_training import fit_flow, log_likelihoods, mean_and_error  # noqa: E402
from experiments.nsf_tabular.config import Config  # noqa: E402
from jflows.data import toy2d  # noqa: E402
from jflows.data.uci import miniboone_preprocess  # noqa: E402
from jflows.flows import maf  # noqa: E402
from jflows.flows.nsf import nsf_autoregressive, nsf_coupling  # noqa: E402
from jflows.flows.realnvp import realnvp  # noqa: E402

LABELS = {"maf": "MAF(5)", "realnvp": "RealNVP(10)", "nsf_autoregressive": "NSF-AR(5)",
          "nsf_coupling": "NSF-C(10)"}


def make_flow(name: str, dim: int, config: Config):
    """``axis_name -> flow`` for :func:`experiments.maf_training.fit_flow`."""
    hidden = config.hidden_sizes
    spline = dict(num_bins=config.num_bins, bound=config.bound)

    def build(axis_name):
        if name == "maf":
            return maf(dim, 5, hidden, activation="tanh", batch_norm=True, axis_name=axis_name)
        if name == "realnvp":
            return realnvp(dim, 10, hidden, activation=config.realnvp_activation,
                           batch_norm=True, axis_name=axis_name)
        if name == "nsf_autoregressive":
            return nsf_autoregressive(dim, 5, hidden, **spline)
        if name == "nsf_coupling":
            return nsf_coupling(dim, 10, hidden, **spline)
        raise ValueError(f"nsf_tabular: unknown model {name!r}; expected one of {list(LABELS)}.")

    return build


def datasets(config: Config):
    """``name -> (splits, log-det of the standardisation, facts)``: MINIBOONE (unless
    ``config.miniboone`` is False) then the toys."""
    out = {}
    if config.miniboone:
        raw, digest = load_sample(config.data_path)
        splits = dict(zip(("train", "validation", "test"), miniboone_preprocess(raw),
                          strict=True))
        out["miniboone"] = (splits, 0.0, {"sha256": digest, "raw_shape": list(raw.shape)})
    sizes = {"train": config.toy_train, "validation": config.toy_validation,
             "test": config.toy_test}
    for index, toy in enumerate(config.toys):
        draws = {k: toy2d.sample(toy, n, seed=config.seed + 10 * index + j)
                 for j, (k, n) in enumerate(sizes.items())}
        mean, std = draws["train"].mean(0), draws["train"].std(0)
        standardised = {k: (v - mean) / std for k, v in draws.items()}
        out[toy] = (standardised, -float(np.sum(np.log(std))), {"mean": mean.tolist(),
                                                                 "std": std.tolist()})
    return out


def run_one(name: str, splits: dict, config: Config, toy: bool) -> dict:
    """Train one model on one data set; scores, timings and samples."""
    dim = splits["train"].shape[1]
    make = make_flow(name, dim, config)
    x32 = {k: np.asarray(v, np.float32) for k, v in splits.items()}
    params, state, result, seconds = fit_flow(
        make, x32["train"], x32["validation"], learning_rate=config.learning_rate,
        batch_size=config.toy_batch_size if toy else config.batch_size,
        epochs=config.toy_max_epochs if toy else config.max_epochs,
        patience=config.toy_patience if toy else config.patience,
        weight_decay=config.weight_decay, seed=config.seed, max_steps=config.max_steps,
        progress=config.progress)
    flow = make(None)
    start = time.perf_counter()
    test_ll = log_likelihoods(flow, params, state, x32["test"])
    test_seconds = time.perf_counter() - start
    draw = jax.jit(lambda p, s, key: flow.sample(p, s, key, (config.num_samples,)))
    start = time.perf_counter()
    samples = np.asarray(draw(params, state, jax.random.key(config.seed + 1)))
    sample_seconds = time.perf_counter() - start
    return {
        "test_log_likelihood": test_ll, "samples": samples,
        "train_seconds": seconds, "test_seconds_with_compile": test_seconds,
        "sample_seconds_with_compile": sample_seconds,
        "steps": int(result.last_state.step), "best_step": result.best_step,
        "epochs": len(result.history), "stop_reason": result.stop_reason,
        "num_params": sum(int(np.size(p)) for p in jax.tree_util.tree_leaves(params)),
    }


def plot_samples(path: Path, data: np.ndarray, runs: dict, pairs, title: str) -> None:
    """One row per dimension pair: the test data, then every model's samples."""
    cols = 1 + len(runs)
    fig, axes = plt.subplots(len(pairs), cols, figsize=(3.2 * cols, 3.2 * len(pairs)),
                             squeeze=False)
    for row, (i, j) in enumerate(pairs):
        lo = np.quantile(data[:, [i, j]], 0.005, axis=0)
        hi = np.quantile(data[:, [i, j]], 0.995, axis=0)
        pad = 0.1 * (hi - lo)
        panels = [("test data", data)] + [(LABELS[n], r["samples"]) for n, r in runs.items()]
        for ax, (label, points) in zip(axes[row], panels, strict=True):
            ax.hist2d(points[:, i], points[:, j], bins=80,
                      range=[[lo[0] - pad[0], hi[0] + pad[0]], [lo[1] - pad[1], hi[1] + pad[1]]],
                      cmap="viridis")
            ax.set(title=f"{label}" + (f" (dims {i}, {j})" if data.shape[1] > 2 else ""),
                   xticks=[], yticks=[])
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def table(results: dict, models) -> str:
    """Markdown: test log-likelihood ± 2 s.e. (and median), training seconds; data sets by
    models."""
    head = "| data | " + " | ".join(LABELS[m] for m in models) + " |"
    lines = [head, "|---|" + "---:|" * len(models)]
    for data, runs in results.items():
        cells = [f"{r['test_log_likelihood']['mean']:.2f} ± "
                 f"{r['test_log_likelihood']['two_std_errors']:.2f} "
                 f"(median {r['test_log_likelihood']['median']:.2f}; "
                 f"{r['train_seconds']:.0f} s)" for r in (runs[m] for m in models)]
        lines.append(f"| {data} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(config: Config) -> dict:
    start = time.perf_counter()
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results, info = {}, {}
    for data_name, (splits, log_det, meta) in datasets(config).items():
        toy = data_name != "miniboone"
        info[data_name] = {**meta, "rows": {k: len(v) for k, v in splits.items()}}
        runs = {}
        for name in config.models:
            runs[name] = run_one(name, splits, config, toy)
            print(f"{data_name} {LABELS[name]}: test "
                  f"{np.mean(runs[name]['test_log_likelihood']) + log_det:.3f} nats, "
                  f"{runs[name]['train_seconds']:.1f} s", flush=True)
        pairs = [(0, 1)] if toy else list(config.plot_pairs)
        plot_samples(out / f"samples_{data_name}.png", splits["test"], runs, pairs,
                     f"{data_name}: test data and {config.num_samples} samples per model"
                     + (" (standardised units)" if toy or data_name == "miniboone" else ""))
        results[data_name] = {}
        for name, run in runs.items():
            test_ll = run.pop("test_log_likelihood") + log_det
            mean, err = mean_and_error(test_ll)
            run.pop("samples")
            # The mean of a small test set can be one row's: the median and the worst row
            # say whether it is.
            results[data_name][name] = {"test_log_likelihood": {
                "mean": mean, "two_std_errors": err, "median": float(np.median(test_ll)),
                "worst_row": float(np.min(test_ll))}, **run}
        # Written after every data set, so a run cut short keeps what it finished.
        summary = {"results": results, "data": info,
                   "config": {k: v for k, v in vars(config).items() if k != "data_path"},
                   "devices": [d.device_kind for d in jax.devices()],
                   "total_seconds": time.perf_counter() - start}
        (out / "results.json").write_text(json.dumps(summary, indent=2))
        (out / "results.md").write_text(table(results, config.models) + "\n")
    print(table(results, config.models))
    return summary
