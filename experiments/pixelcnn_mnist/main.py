"""PixelCNN++ on MNIST, unconditional and class-conditional: test bits/dim and sample grids."""

from __future__ import annotations

import dataclasses
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


def main(cfg: PixelCNNConfig, *, out_dir, data_path,
         variants=("unconditional", "conditional"), progress=True) -> dict:
    dataset = jdata.mnist(path=data_path)
    test = dataset.test
    if cfg.max_test_examples is not None:  # the first ones: the official test order
        test = {k: v[: cfg.max_test_examples] for k, v in test.items()}
    all_results = {}
    for variant in variants:
        vcfg = dataclasses.replace(cfg, conditional=variant == "conditional")
        vdir = Path(out_dir) / variant
        model, result, info = train(vcfg, dataset, vdir, progress=progress)
        state = result.state
        results = {
            "variant": variant,
            **scores_on_test(model, state, test, vcfg),
            **info,
        }
        n = vcfg.samples_per_class
        labels = np.repeat(np.arange(10), n)  # conditional: n per digit; else 10 n draws
        samples, results["sample_seconds"] = sample_images(
            model, state.ema_params, state.model_state, vcfg, labels,
            jax.random.key(vcfg.seed + 1))
        save_grid(samples, 10, vdir / "samples.png",
                  f"MNIST PixelCNN++ samples ({variant}"
                  + (", one digit per row)" if vcfg.conditional else ")"),
                  row_labels=[str(d) for d in range(10)] if vcfg.conditional else None)
        write_results(vdir, vcfg, results)
        print(f"{variant}: test bits/dim (Polyak) {results['test_bits_per_dim_polyak']:.4f}, "
              f"raw {results['test_bits_per_dim_raw']:.4f}; {info['steps']} steps in "
              f"{info['train_seconds']:.0f} s")
        all_results[variant] = results
    return all_results
