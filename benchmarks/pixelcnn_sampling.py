"""PixelCNN++ sampling: cached activations vs one network pass per pixel (naive) vs row bands.

    python -m benchmarks.pixelcnn_sampling                        # 28x28x1 and 32x32x3
    python -m benchmarks.pixelcnn_sampling --configs mnist28 --batches 1,16 --naive-end-to-end

For each config and batch size: images/s of ``model.sample(method="cached")`` timed end to
end (one compiled call), and of the naive and banded samplers, estimated from timed network
passes: naive = ``H * W`` full-image passes, banded (4 bands) = ``sum_bands rows * W *
pass(band height)``; the per-pixel draw they also do is left out, which favours them.
``--naive-end-to-end`` also times ``method="naive"`` end to end at the smallest batch of the
28x28 config, to check the estimate. The timings of one config are interleaved (round
robin) so that load changes hit each alike; ``--clock process`` (default) measures this
process's CPU time (:func:`benchmarks.timing.median_seconds`), which other processes on a
shared machine disturb far less than wall time. Before timing, each cached sample is
checked against the naive sampler's rule: with a causal network, the naive loop's image is
the one whose every pixel is the draw (same key) from one network pass over the image
itself, so one pass checks it (the fraction of pixels that differ is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

import jflows.distributions as jd
from benchmarks.timing import machine_description, median_seconds
from jflows.distributions import logistic_mixture
from jflows.distributions.pixelcnn import row_bands

CONFIGS = {
    # The CPU run of experiments/pixelcnn_quickdraw: 6 classes, reduced network.
    "mnist28": dict(image_shape=(28, 28, 1), cond_shape=(6,), num_resnet=2,
                    num_hierarchies=3, num_filters=32, num_logistic_mix=5),
    # The experiments' full network (the seed's QuickDraw setup).
    "quickdraw28": dict(image_shape=(28, 28, 1), cond_shape=(6,), num_resnet=5,
                        num_hierarchies=3, num_filters=128, num_logistic_mix=5),
    # The paper's CIFAR-10 network (unconditional).
    "cifar32": dict(image_shape=(32, 32, 3), num_resnet=5, num_hierarchies=3,
                    num_filters=160, num_logistic_mix=10),
}
CLOCKS = {"process": time.process_time, "wall": time.perf_counter}


def naive_rule_mismatch(model, params, state, key, images, cond) -> float:
    """Fraction of pixels of ``images`` that differ from the draw (the naive sampler's key
    for that pixel) from one network pass over ``images``."""
    height, width, channels = model.event_shape
    raw = model.network.apply({"params": params}, images.astype(jnp.float32), cond)
    keys = jax.vmap(lambda t: jax.random.fold_in(key, t))(jnp.arange(height * width))

    def draw(raw_t, key_t):  # raw_t (n, P): pixel t of every image, as the samplers draw it
        return logistic_mixture.sample(raw_t[:, None, None], key_t, channels,
                                       model.network.num_logistic_mix)[:, 0, 0]

    flat = raw.reshape(raw.shape[0], height * width, -1).swapaxes(0, 1)
    redrawn = jax.vmap(draw)(flat, keys).swapaxes(0, 1).reshape(images.shape)
    return float(jnp.mean(redrawn != images))


def bench_batch(model, params, state, n, repeats, clock, naive_end_to_end, num_row_buckets):
    """Interleaved timings of the cached sampler and the network passes at batch ``n``."""
    height, width, _ = model.event_shape
    cond = None if model.cond_shape is None else jnp.arange(n) % model.cond_shape[0]
    key = jax.random.key(n)
    start = time.perf_counter()
    images = jax.block_until_ready(model.sample(params, state, key, n, cond=cond))
    compile_s = time.perf_counter() - start
    mismatch = naive_rule_mismatch(model, params, state, key, images, cond)
    flat_cond = None if cond is None else jax.nn.one_hot(cond, model.cond_shape[0])
    timed = {"cached": lambda: model.sample(params, state, key, n, cond=cond)}
    for _, stop in row_bands(height, num_row_buckets):
        apply = jax.jit(model.network.clone(image_shape=(stop, *model.event_shape[1:])).apply)
        x = jnp.zeros((n, stop, *model.event_shape[1:]))
        timed[f"pass_{stop}"] = lambda a=apply, x=x: a({"params": params}, x, flat_cond)
        jax.block_until_ready(timed[f"pass_{stop}"]())  # compile
    if naive_end_to_end:
        timed["naive"] = lambda: model.sample(params, state, key, n, cond=cond, method="naive")
        jax.block_until_ready(timed["naive"]())  # compile
    samples = {k: [] for k in timed}
    load = [os.getloadavg()[0]]
    for _ in range(repeats):  # round robin
        for k, fn in timed.items():
            samples[k].append(median_seconds(fn, repeats=1, warmup=0, clock=clock))
        load.append(os.getloadavg()[0])
    sec = {k: statistics.median(v) for k, v in samples.items()}
    naive_est = height * width * sec[f"pass_{height}"]
    banded_est = sum((stop - start) * width * sec[f"pass_{stop}"]
                     for start, stop in row_bands(height, num_row_buckets))
    row = {"cached_s": sec["cached"], "cached_first_call_wall_s": compile_s,
           "naive_est_s": naive_est, "banded_est_s": banded_est,
           "pass_s": {k: v for k, v in sec.items() if k.startswith("pass_")},
           "naive_s": sec.get("naive"), "naive_rule_mismatch": mismatch,
           "load_avg_1min": load, "cached_images_per_s": n / sec["cached"],
           "naive_images_per_s_est": n / naive_est, "banded_images_per_s_est": n / banded_est}
    measured = ("" if row["naive_s"] is None else
                f"; naive end to end {row['naive_s']:.1f} s "
                f"({row['naive_s'] / sec['cached']:.0f}x)")
    print(f"  batch {n}: cached {sec['cached']:.2f} s = {n / sec['cached']:.3g} images/s "
          f"(first call {compile_s:.0f} s wall); naive est. {naive_est:.1f} s "
          f"({naive_est / sec['cached']:.0f}x); banded est. {banded_est:.1f} s "
          f"({banded_est / sec['cached']:.0f}x){measured}; differ from the naive rule: "
          f"{mismatch:.2e} of pixels; load {min(load):.0f}-{max(load):.0f}", flush=True)
    return row


def bench_config(name, cfg, batches, repeats, clock, naive_end_to_end, num_row_buckets):
    model = jd.pixel_cnn(**cfg, use_data_init=False)
    params, state = model.init(jax.random.key(0))
    entry = {"config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
             "num_params": int(sum(x.size for x in jax.tree.leaves(params))), "batches": {}}
    print(f"{name}: {entry['num_params'] / 1e6:.2f} M params", flush=True)
    for n in batches:
        entry["batches"][n] = bench_batch(model, params, state, n, repeats, clock,
                                          naive_end_to_end and n == min(batches),
                                          num_row_buckets)
    return entry


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="mnist28,cifar32")
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clock", default="process", choices=sorted(CLOCKS))
    parser.add_argument("--num-row-buckets", type=int, default=4)
    parser.add_argument("--naive-end-to-end", action="store_true")
    parser.add_argument("--out", default="runs/benchmarks/pixelcnn_sampling.json")
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    machine = machine_description()
    print(f"# PixelCNN++ sampling benchmark: {machine}; clock: {args.clock} time")
    results = {"machine": machine, "args": vars(args), "configs": {}}
    for name in args.configs.split(","):
        results["configs"][name] = bench_config(
            name, CONFIGS[name], batches, args.repeats, CLOCKS[args.clock],
            args.naive_end_to_end and name != "cifar32", args.num_row_buckets)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
