"""PixelCNN++ on QuickDraw (28x28x1, class-conditional): test bits/dim, and for each class
a figure with 8 real drawings above 8 samples."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

import jflows.data as jdata
from experiments.pixelcnn_quickdraw.pipeline import (
    PixelCNNConfig,
    sample_images,
    save_grid,
    scores_on_test,
    train,
    write_results,
)


def main(cfg: PixelCNNConfig, *, out_dir, data_path, progress=True) -> dict:
    out_dir = Path(out_dir)
    dataset = jdata.quickdraw_bitmaps(path=data_path)
    classes = list(dataset.info["class_names"])
    model, result, info = train(cfg, dataset, out_dir, progress=progress)
    state = result.state
    test = dataset.test
    if cfg.max_test_examples is not None:  # an equal share of every class
        per_class = cfg.max_test_examples // len(classes)
        keep = np.concatenate([np.flatnonzero(test["label"] == c)[:per_class]
                               for c in range(len(classes))])
        test = {k: v[keep] for k, v in test.items()}
    results = {
        "classes": classes,
        **scores_on_test(model, state, test, cfg),
        **info,
    }
    n = cfg.samples_per_class
    labels = np.repeat(np.arange(len(classes)), n)
    samples, results["sample_seconds"] = sample_images(
        model, state.ema_params, state.model_state, cfg, labels, jax.random.key(cfg.seed + 1))
    results["sample_method"] = cfg.sample_method
    for c, name in enumerate(classes):
        real = test["x"][test["label"] == c][:n]
        save_grid(np.concatenate([real, samples[c * n : (c + 1) * n]]), 2,
                  out_dir / f"samples_{name.replace(' ', '_')}.png",
                  f"QuickDraw '{name}': real (top) and PixelCNN++ samples (bottom)")
    write_results(out_dir, cfg, results)
    print(f"test bits/dim (Polyak params): {results['test_bits_per_dim_polyak']:.4f}; "
          f"raw params: {results['test_bits_per_dim_raw']:.4f}; "
          f"{info['steps']} steps in {info['train_seconds']:.0f} s")
    return results
