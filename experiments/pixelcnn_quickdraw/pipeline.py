"""Train, evaluate and sample a PixelCNN++ on 8-bit images; shared by ``pixelcnn_quickdraw``
and ``pixelcnn_mnist``.

Training goes through :mod:`jflows.train` (data-parallel over every local device, gradients
averaged, Polyak/EMA params, checkpoints, metric files and a learning-curve plot in the
output directory). Test bits/dim are computed with the EMA (Polyak-averaged) params, as in
the paper, and with the raw params; samples are drawn with the EMA params.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jflows.data as jdata
import jflows.distributions as jd
import jflows.train as jt
from experiments.chunked import map_in_chunks
from jflows.distributions.pixelcnn import evaluation_fn, training_loss_fn


@dataclasses.dataclass(frozen=True)
class PixelCNNConfig:
    """Model, optimizer and run settings (defaults: the paper's optimizer settings)."""

    num_resnet: int = 5
    num_hierarchies: int = 3
    num_filters: int = 128
    num_logistic_mix: int = 5
    dropout_p: float = 0.5
    conditional: bool = True
    learning_rate: float = 1e-3
    lr_decay_per_step: float = 0.999995
    polyak_decay: float = 0.9995
    batch_size: int = 64
    epochs: int = 100
    max_steps: int | None = None  # stop early (reduced CPU runs)
    max_train_examples: int | None = None  # subsample the training set (reduced CPU runs)
    max_test_examples: int | None = None
    eval_batch_size: int = 100
    samples_per_class: int = 8
    sample_method: str = "cached"  # model.sample's method: cached, banded or naive
    seed: int = 0


def build_model(cfg: PixelCNNConfig, image_shape, num_classes: int):
    return jd.pixel_cnn(
        image_shape,
        cond_shape=(num_classes,) if cfg.conditional else None,
        num_resnet=cfg.num_resnet,
        num_hierarchies=cfg.num_hierarchies,
        num_filters=cfg.num_filters,
        num_logistic_mix=cfg.num_logistic_mix,
        dropout_p=cfg.dropout_p,
    )


def _random_subset(split: dict, n: int | None, seed: int) -> dict:
    """A random subset of ``n`` examples (all when None), fixed by ``seed``."""
    size = len(split["x"])
    if n is None or n >= size:
        return split
    index = np.sort(np.random.default_rng(seed).permutation(size)[:n])
    return {k: v[index] for k, v in split.items()}


def evaluate_bits_per_dim(model, params, model_state, split: dict, batch_size: int):
    """Exact mean test bits/dim over ``split`` (no dropout), batched under one ``jit``;
    conditioned on ``split["label"]`` when the model is conditional."""
    if model.cond_shape is not None:
        values = map_in_chunks(lambda p, s, x, c: model.bits_per_dim(p, s, x, cond=c),
                               (params, model_state), (split["x"], split["label"]), batch_size)
    else:
        values = map_in_chunks(lambda p, s, x: model.bits_per_dim(p, s, x),
                               (params, model_state), (split["x"],), batch_size)
    return float(np.mean(values))


def scores_on_test(model, state, test: dict, cfg: PixelCNNConfig) -> dict:
    """Test bits/dim with the Polyak-averaged and with the raw parameters."""
    def score(params):
        return evaluate_bits_per_dim(model, params, state.model_state, test,
                                     cfg.eval_batch_size)

    return {"test_examples": len(test["x"]),
            "test_bits_per_dim_polyak": score(state.ema_params),
            "test_bits_per_dim_raw": score(state.params)}


def train(cfg: PixelCNNConfig, dataset: jdata.Dataset, out_dir: Path, *, progress=True):
    """Fit the model; returns ``(model, fit_result, info)``."""
    train_split = _random_subset(dataset.train, cfg.max_train_examples, cfg.seed)
    image_shape = train_split["x"].shape[1:]
    num_classes = len(dataset.info["class_names"])
    model = build_model(cfg, image_shape, num_classes)
    key_init, key_run = jax.random.split(jax.random.key(cfg.seed))
    init_batch = train_split["x"][: cfg.batch_size]
    init_labels = train_split["label"][: cfg.batch_size] if cfg.conditional else None
    params, model_state = model.init(key_init, images=init_batch, cond=init_labels)  # data init

    optimizer = jd.paper_optimizer(cfg.learning_rate, cfg.lr_decay_per_step)
    state = jt.TrainState.create(params=params, model_state=model_state, optimizer=optimizer,
                                 key=key_run, ema_decay=cfg.polyak_decay)
    train_step = jt.make_train_step(training_loss_fn(model), optimizer)
    iterator = jdata.BatchIterator(train_split, cfg.batch_size, seed=cfg.seed,
                                   drop_remainder=True)
    validation = None
    if dataset.validation is not None:
        validation = jdata.BatchIterator(
            _random_subset(dataset.validation, cfg.max_test_examples, cfg.seed),
            cfg.eval_batch_size, shuffle=False, drop_remainder=False)
    start = time.perf_counter()
    result = jt.fit(
        state, train_step, iterator, epochs=cfg.epochs, max_steps=cfg.max_steps,
        validation=None if validation is None else jt.Validation(
            jt.make_eval_step(evaluation_fn(model)), validation, monitor="bits_per_dim"),
        workdir=out_dir, checkpointing=jt.Checkpointing(every=500, resume=True),
        logging=jt.Logging(every=10, progress=progress),
    )
    info = {"train_seconds": time.perf_counter() - start,
            "num_params": int(sum(x.size for x in jax.tree.leaves(params))),
            "train_examples": len(train_split["x"]), "steps": int(result.last_state.step),
            "devices": jax.local_device_count()}
    return model, result, info


def sample_images(model, params, model_state, cfg: PixelCNNConfig, labels, key):
    """``(images, seconds)``: int32 samples for ``labels`` (or ``len(labels)`` unconditional
    draws) by ``cfg.sample_method``, and the wall time they took (compilation included)."""
    cond = jnp.asarray(labels) if cfg.conditional else None
    start = time.perf_counter()
    images = np.asarray(model.sample(params, model_state, key, len(labels), cond=cond,
                                     method=cfg.sample_method))
    seconds = time.perf_counter() - start
    print(f"sampled {len(labels)} images ({cfg.sample_method} sampler) in {seconds:.1f} s, "
          "compilation included")
    return images, seconds


def save_grid(images: np.ndarray, rows: int, path: Path, title: str, row_labels=None):
    """A ``rows x (n / rows)`` grid of grayscale images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = math.ceil(len(images) / rows)
    fig, axes = plt.subplots(rows, cols, figsize=(max(cols * 0.9, 4.0), rows * 0.9 + 0.5),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, img in enumerate(images):
        ax = axes[i // cols, i % cols]
        ax.imshow(img[..., 0], cmap="gray_r", vmin=0, vmax=255)
        if row_labels is not None and i % cols == 0:
            ax.set_title(row_labels[i // cols], fontsize=7, loc="left")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(out_dir: Path, cfg: PixelCNNConfig, results: dict):
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(
        json.dumps({"config": dataclasses.asdict(cfg), **results}, indent=2))
