"""Train a MAF on one class, score every class by mean log-likelihood, rank and ROC-AUC."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import scipy.stats  # noqa: E402

import jflows.data as jdata  # noqa: E402
from experiments.maf_anomaly.config import SPEECH_WORDS, Config  # noqa: E402
from experiments.maf_training import fit_flow, log_likelihoods  # noqa: E402
from jflows.flows import maf  # noqa: E402


def roc_auc(positive_scores: np.ndarray, negative_scores: np.ndarray) -> float:
    """``P(score(positive) > score(negative))`` (+ half the ties): the Mann-Whitney form of
    the area under the ROC curve of detecting positives by a higher score."""
    ranks = scipy.stats.rankdata(np.concatenate([positive_scores, negative_scores]))
    n_pos, n_neg = len(positive_scores), len(negative_scores)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def load(config: Config):
    """``(train_x, valid_x, test_x, test_labels, class_names, to_pixel_log_prob)``."""
    if config.dataset == "mnist":
        data = jdata.mnist(config.data_dir, path=config.data_path, preprocessing="logit")
        names = [str(d) for d in range(10)] if config.classes is None else list(config.classes)
        target = int(config.train_class)
        dim = data.info["num_dims"]

        def pixel(log_prob, split):  # log-density of the dequantized pixels
            return np.asarray(jdata.pixel_log_prob(log_prob, split["logdet"], dim))

        test = data.test
        keep = np.isin(test["label"], [int(n) for n in names])
        test = {k: v[keep] for k, v in test.items()}
        return (data.train["x"][data.train["label"] == target],
                data.validation["x"][data.validation["label"] == target],
                test["x"], np.array([names.index(str(y)) for y in test["label"]]), names,
                lambda lp: pixel(lp, test))
    if config.dataset == "speech_commands":
        names = list(SPEECH_WORDS if config.classes is None else config.classes)
        data = jdata.speech_commands(names, config.data_dir, path=config.data_path,
                                     version=config.speech_version, features="seed_fft",
                                     split="seed", seed=config.seed)
        target = names.index(config.train_class)
        train = data.train["x"][data.train["label"] == target].astype(np.float64)
        mean, std = train.mean(0), train.std(0) + 1e-6
        standardize = lambda x: ((x - mean) / std).astype(np.float32)  # noqa: E731
        # The z-scoring is one affine map for every class: add its log-det so the numbers
        # are densities of the raw features (ranks are unchanged either way).
        log_det = -float(np.sum(np.log(std)))
        return (standardize(train), None, standardize(data.test["x"]), data.test["label"],
                names, lambda lp: np.asarray(lp) + log_det)
    raise ValueError(f"dataset must be 'mnist' or 'speech_commands', got {config.dataset!r}.")


def plot(out: Path, table: list[dict], config: Config) -> None:
    names = [row["class"] for row in table]
    values = [row["mean_log_likelihood"] for row in table]
    colors = ["C3" if n == config.train_class else "C0" for n in names]
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(names)), 4))
    ax.bar(range(len(names)), values, color=colors)
    ax.set_xticks(range(len(names)), names, rotation=90 if len(names) > 10 else 0)
    ax.set(ylabel="mean test log-likelihood (nats)",
           title=f"MAF trained on '{config.train_class}' ({config.dataset}); red = trained class")
    fig.tight_layout()
    fig.savefig(out / f"{config.dataset}_{config.train_class}.png", dpi=100)
    plt.close(fig)


def main(config: Config) -> dict:
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_x, valid_x, test_x, test_labels, names, to_reported = load(config)
    if config.train_class not in names:
        raise ValueError(f"train_class {config.train_class!r} is not among the classes {names}.")
    dim = train_x.shape[1]

    def make_flow(axis_name):
        return maf(dim, config.num_layers, config.hidden_sizes, activation=config.activation,
                   axis_name=axis_name)

    params, state, result, seconds = fit_flow(
        make_flow, train_x, valid_x, learning_rate=config.learning_rate,
        batch_size=min(config.batch_size, len(train_x)), epochs=config.max_epochs,
        patience=config.patience, weight_decay=config.weight_decay, seed=config.seed,
        workdir=out / f"{config.dataset}_{config.train_class}" / "fit")
    scores = to_reported(log_likelihoods(make_flow(None), params, state, test_x))
    target = names.index(config.train_class)
    table = []
    for index, name in enumerate(names):
        s = scores[test_labels == index]
        if not len(s):
            continue
        auc = None if index == target else roc_auc(scores[test_labels == target], s)
        table.append({"class": name, "count": int(len(s)),
                      "mean_log_likelihood": float(np.mean(s)),
                      "bits_per_dim": float(-np.mean(s) / (dim * np.log(2.0))),
                      "roc_auc_vs_trained_class": auc})
    table.sort(key=lambda row: -row["mean_log_likelihood"])
    rank = 1 + [row["class"] for row in table].index(config.train_class)
    plot(out, table, config)
    results = {"dataset": config.dataset, "train_class": config.train_class,
               "rank_of_train_class": rank, "num_classes": len(table), "table": table,
               "train_rows": int(len(train_x)), "epochs_trained": len(result.history),
               "stop_reason": result.stop_reason, "train_seconds": seconds,
               "devices": [d.device_kind for d in jax.devices()]}
    (out / f"{config.dataset}_{config.train_class}.json").write_text(json.dumps(results,
                                                                                indent=2))
    print(f"{'class':>8} {'n':>5} {'mean log-lik':>13} {'bits/dim':>9} {'ROC-AUC':>8}")
    for row in table:
        auc = row["roc_auc_vs_trained_class"]
        print(f"{row['class']:>8} {row['count']:>5} {row['mean_log_likelihood']:13.1f} "
              f"{row['bits_per_dim']:9.3f} {'(trained)' if auc is None else f'{auc:8.3f}'}")
    print(f"trained on '{config.train_class}': rank {rank} of {len(table)}; "
          f"{len(result.history)} epochs in {seconds / 60:.1f} min ({result.stop_reason})")
    return results
