"""PixelCNN++ speed: training images/s and sampling time, jflows vs the PyTorch reference.

    python -m benchmarks.pixelcnn                                  # jflows only
    python -m benchmarks.pixelcnn --torch-python <a venv with torch>/bin/python \\
        --torch-ref /tmp/pixel-cnn-pp                              # + pclucas14/pixel-cnn-pp
    python -m benchmarks.pixelcnn --configs cifar10_paper          # one paper-scale step

For each config: the compile time and steady-state time of one jitted training step
(bits/dim loss with dropout, Adam; batch ``--batch``), and for sampling the measured time
of one network pass at batch 16 and 256 for each row band the sampler uses. A full
sample of ``n`` images costs ``sum_bands rows * W * pass_time(band height)``, given as the
estimate; ``--sample-end-to-end`` also times ``model.sample`` for 16 images end to end
(minutes on this CPU for the small config). The PyTorch side (``benchmarks/
pixelcnn_torch_ref.py``, run in its own interpreter) uses the same unconditional
grayscale config, its own training loss and its sampling scheme of one full pass per pixel.
Results are printed as a table and written to ``runs/benchmarks/pixelcnn.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jflows.distributions as jd
from benchmarks.timing import machine_description, median_seconds
from jflows.distributions.pixelcnn import row_bands

CONFIGS = {
    # The QuickDraw experiment's network (Salimans et al. / the seed), unconditional here so
    # that the PyTorch reference (unconditional only) runs the same model.
    "quickdraw": dict(image_shape=(28, 28, 1), num_resnet=5, num_hierarchies=3,
                      num_filters=128, num_logistic_mix=5),
    # The reduced config of the CPU runs in experiments/pixelcnn_*.
    "small": dict(image_shape=(28, 28, 1), num_resnet=2, num_hierarchies=3,
                  num_filters=32, num_logistic_mix=5),
    # The paper's CIFAR-10 model: must build and run a training step.
    "cifar10_paper": dict(image_shape=(32, 32, 3), num_resnet=5, num_hierarchies=3,
                          num_filters=160, num_logistic_mix=10),
}


def bench_train(model, params, state, batch, steps):
    optimizer = jd.paper_optimizer()
    opt_state = optimizer.init(params)
    images = jax.random.randint(jax.random.key(1), (batch, *model.event_shape), 0, 256)

    @jax.jit
    def step(params, opt_state, key):
        loss, grads = jax.value_and_grad(
            lambda p: model.bits_per_dim(p, state, images, train=True, key=key).mean())(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    start = time.perf_counter()
    params, opt_state, loss = jax.block_until_ready(step(params, opt_state, jax.random.key(0)))
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for t in range(steps):
        params, opt_state, loss = step(params, opt_state, jax.random.key(t + 1))
    jax.block_until_ready(loss)
    step_s = (time.perf_counter() - start) / steps
    return {"compile_s": compile_s, "step_s": step_s, "images_per_s": batch / step_s,
            "loss_finite": bool(np.isfinite(loss))}


def bench_sampling(model, params, sample_batches, num_row_buckets, repeats):
    height, width, _ = model.event_shape
    result = {}
    for n in sample_batches:
        total, passes = 0.0, {}
        for start, stop in row_bands(height, num_row_buckets):
            band = model.network.clone(image_shape=(stop, *model.event_shape[1:]))
            apply = jax.jit(band.apply)
            images = jnp.zeros((n, stop, *model.event_shape[1:]), jnp.int32)
            passes[stop] = median_seconds(lambda a=apply, x=images: a({"params": params}, x),
                                          repeats=repeats, warmup=1)
            total += (stop - start) * width * passes[stop]
        result[n] = {"pass_s_by_band_height": passes, "estimated_sample_s": total,
                     "full_pass_baseline_s": height * width * passes[height]}
    return result


def bench_sample_end_to_end(model, params, state, n, num_row_buckets):
    start = time.perf_counter()
    jax.block_until_ready(model.sample(params, state, jax.random.key(0), n, method="banded",
                                       num_row_buckets=num_row_buckets))
    return time.perf_counter() - start  # includes compilation


def run_torch(python, ref, cfg, batch, sample_batches):
    height, _, _ = cfg["image_shape"]
    cmd = [python, str(Path(__file__).with_name("pixelcnn_torch_ref.py")), "--ref", ref,
           "--size", str(height), "--num-resnet", str(cfg["num_resnet"]),
           "--num-filters", str(cfg["num_filters"]),
           "--num-logistic-mix", str(cfg["num_logistic_mix"]), "--batch", str(batch),
           "--sample-batches", ",".join(map(str, sample_batches))]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="small,quickdraw")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--sample-batches", default="16,256")
    parser.add_argument("--num-row-buckets", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sample-end-to-end", action="store_true")
    parser.add_argument("--no-sampling", action="store_true")
    parser.add_argument("--torch-python", default=None)
    parser.add_argument("--torch-ref", default=None)
    parser.add_argument("--out", default="runs/benchmarks/pixelcnn.json")
    args = parser.parse_args(argv)
    sample_batches = [int(b) for b in args.sample_batches.split(",")]

    machine = machine_description()
    print(f"# PixelCNN++ benchmark: {machine}")
    results = {"machine": machine, "args": vars(args), "configs": {}}
    for name in args.configs.split(","):
        cfg = CONFIGS[name]
        model = jd.pixel_cnn(**cfg, use_data_init=False)
        params, state = model.init(jax.random.key(0))
        n_params = sum(x.size for x in jax.tree.leaves(params))
        entry = {"config": cfg, "num_params": int(n_params)}
        entry["train"] = bench_train(model, params, state, args.batch, args.train_steps)
        train = entry["train"]
        print(f"{name}: {n_params / 1e6:.2f}M params, train batch {args.batch}: "
              f"{train['images_per_s']:.2f} images/s "
              f"(step {train['step_s']:.2f} s, compile {train['compile_s']:.0f} s)", flush=True)
        if not args.no_sampling:
            entry["sampling"] = bench_sampling(model, params, sample_batches,
                                               args.num_row_buckets, args.repeats)
            for n, s in entry["sampling"].items():
                print(f"  sample {n}: est. {s['estimated_sample_s']:.0f} s with "
                      f"{args.num_row_buckets} row bands ({s['full_pass_baseline_s']:.0f} s "
                      f"with a full pass per pixel); full pass "
                      f"{s['pass_s_by_band_height'][cfg['image_shape'][0]] * 1e3:.0f} ms",
                      flush=True)
            if args.sample_end_to_end:
                entry["sample_16_end_to_end_s"] = bench_sample_end_to_end(
                    model, params, state, 16, args.num_row_buckets)
                print(f"  sample 16 end to end (incl. compile): "
                      f"{entry['sample_16_end_to_end_s']:.0f} s", flush=True)
        if args.torch_python and args.torch_ref and cfg["image_shape"][-1] == 1:
            torch_res = run_torch(args.torch_python, args.torch_ref, cfg, args.batch,
                                  sample_batches)
            entry["torch"] = torch_res
            ratio = entry["train"]["images_per_s"] / torch_res["train_images_per_s"]
            print(f"  torch {torch_res['torch']}: train {torch_res['train_images_per_s']:.2f} "
                  f"images/s (jflows/torch = {ratio:.2f}x); full pass "
                  + ", ".join(f"n={n}: {s * 1e3:.0f} ms"
                              for n, s in torch_res["sample_pass_s"].items()), flush=True)
        results["configs"][name] = entry
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
