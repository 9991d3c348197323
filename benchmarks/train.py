"""Training-layer costs: data-parallel steps/s on 1 vs 8 devices, and ``fit``'s overhead.

Model: MAF on 8-D data (GAS-sized): 5 MADE layers with two hidden layers of 100 units and
batch norm (``jflows.flows.maf``), Adam, the negative log-likelihood. Without
``jflows.flows`` (before the MAF branch lands) a stand-in from core bijectors is used
and the output says so: 5 x [low-rank affine, batch norm, leaky ReLU].

1. **Data-parallel steps/s** (child processes with 1 and 8 fake CPU devices,
   ``XLA_FLAGS=--xla_force_host_platform_device_count=N``): the per-device train step under
   ``jax.pmap`` and under ``jit(shard_map)``, same global batch, pre-placed batch, state
   donated. Fake devices share this machine's cores, so 8 devices measure the cost of the
   collectives and the per-device split, not a speed-up.
2. **Loop overhead**: ``fit`` (default mode, 1 device, ``BatchIterator`` + prefetch,
   metric fetches every ``log_every`` steps, progress bar off / on) against a bare Python
   loop calling the ``jax.jit``-ed single-device step (``axis_name=None``,
   ``donate_argnums=0``) on the same ``BatchIterator``'s host batches. Steady state only:
   the bare loop is timed after its compiling steps, ``fit`` by its own train records
   after the first window; the median of ``--repeats`` interleaved measurements.

    python -m benchmarks.train [--batch 100] [--steps 2000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np
import optax

import jflows.bijectors as jb
import jflows.distributions as jd
import jflows.train as jt
from benchmarks.timing import machine_description, median_seconds
from jflows.data import BatchIterator

DIM = 8


def model(axis_name):
    """``(flow, name)``: MAF when ``jflows.flows`` exists, else the core stand-in."""
    try:
        from jflows.flows.maf import maf
    except ImportError:
        layers = []
        for _ in range(5):
            layers += [jb.affine_tril_lowrank(rank=2), jb.batch_norm(axis_name=axis_name),
                       jb.leaky_relu(0.2)]
        flow = jd.transformed(jd.standard_normal((DIM,)), jb.chain(*layers))
        return flow, "core stand-in: 5 x [affine_tril_lowrank(rank=2), batch_norm, leaky_relu]"
    return maf(DIM, 5, (100, 100), axis_name=axis_name), "MAF: 5 MADE layers (100, 100) + BN"


def problem(axis_name=jt.DATA_AXIS):
    flow, name = model(axis_name)

    def loss_fn(params, model_state, batch, key):
        log_prob, model_state = flow.log_prob(params, model_state, batch, train=True)
        return -log_prob.mean(), (model_state, {})

    tx = optax.adam(1e-4)
    params, model_state = flow.init(jax.random.key(0))
    state = jt.TrainState.create(params=params, model_state=model_state, optimizer=tx,
                                 key=jax.random.key(1))
    return loss_fn, tx, state, name


def data(n):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(n, DIM)) @ rng.normal(size=(DIM, DIM))).astype(np.float32)


# ------------------------------------------------------------------ 1. steps/s per device count

def parallel_worker(global_batch: int) -> dict:
    loss_fn, tx, state, name = problem()
    step = jt.make_train_step(loss_fn, tx)
    out = {"devices": jax.device_count(), "model": name}
    batch = data(global_batch)
    for mode in ("pmap", "shard_map"):
        runner = jt.data_parallel(step, mode)
        placed = runner.shard(batch)
        holder = [runner.replicate(state)]

        def one_step(runner=runner, placed=placed, holder=holder):
            holder[0], metrics = runner(holder[0], placed)
            return metrics

        seconds = median_seconds(one_step, repeats=7, warmup=3, min_seconds=0.5)
        out[mode] = 1.0 / seconds
    return out


def run_parallel_children(global_batch: int) -> list[dict]:
    results = []
    for devices in (1, 8):
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.train", "--worker", str(global_batch)],
            env=env, capture_output=True, text=True, check=True)
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return results


# ------------------------------------------------------------------ 2. fit overhead

def bare_loop_seconds_per_step(steps: int, batch_size: int, warmup: int = 5) -> float:
    """A Python loop over the jitted single-device step, fed by the same BatchIterator."""
    loss_fn, tx, state, _ = problem(axis_name=None)
    step = jax.jit(jt.make_train_step(loss_fn, tx, axis_name=None), donate_argnums=0)
    batches = BatchIterator(data(100 * batch_size), batch_size, seed=0).from_step(0)
    for _, batch in zip(range(warmup), batches, strict=False):  # compile
        state, metrics = step(state, batch)
    jax.block_until_ready((state, metrics))
    start = time.perf_counter()
    for _, batch in zip(range(steps), batches, strict=False):
        state, metrics = step(state, batch)
    jax.block_until_ready((state, metrics))
    return (time.perf_counter() - start) / steps


def fit_seconds_per_step(steps: int, batch_size: int, progress: bool, log_every: int) -> float:
    """``fit``'s own steady-state timing: its train records after the first window (which
    holds the compilation). Each window runs from one metric fetch to the next, so it
    includes everything the loop does per step."""
    loss_fn, tx, state, _ = problem()
    iterator = BatchIterator(data(100 * batch_size), batch_size, seed=0)
    with tempfile.TemporaryDirectory() as workdir:
        jt.fit(state, jt.make_train_step(loss_fn, tx), iterator, epochs=1,
               steps_per_epoch=steps + log_every, progress=progress, log_every=log_every,
               workdir=workdir, tensorboard=False)
        records = [json.loads(line) for line in open(f"{workdir}/metrics.jsonl")]
    windows = [r for r in records if r["split"] == "train"][1:]
    seconds = sum(log_every * batch_size / r["examples_per_s"] for r in windows)
    return seconds / (len(windows) * log_every)


def overhead(steps: int, batch_size: int, repeats: int, log_every: int) -> dict:
    variants = {
        "bare jitted step": lambda: bare_loop_seconds_per_step(steps, batch_size),
        "fit, progress bar off": lambda: fit_seconds_per_step(steps, batch_size, False,
                                                              log_every),
        "fit, progress bar on": lambda: fit_seconds_per_step(steps, batch_size, True,
                                                             log_every),
    }
    samples = {name: [] for name in variants}
    for _ in range(repeats):  # interleaved, so load changes hit every variant alike
        for name, measure in variants.items():
            samples[name].append(measure())
    return {name: statistics.median(values) for name, values in samples.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=100, help="batch size (global)")
    parser.add_argument("--steps", type=int, default=2000, help="timed steps per measurement")
    parser.add_argument("--log-every", type=int, default=100, help="fit's log_every")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--parallel-batch", type=int, default=800,
                        help="global batch of the 1-vs-8-device comparison")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(parallel_worker(args.worker)))
        return

    print(machine_description())
    parallel = run_parallel_children(args.parallel_batch)
    print(f"\nmodel: {parallel[0]['model']}, data dim {DIM}, Adam")
    print(f"\n## data-parallel train steps/s, global batch {args.parallel_batch}")
    print("| devices | pmap | shard_map | shard_map / pmap |\n|---|---|---|---|")
    for r in parallel:
        print(f"| {r['devices']} | {r['pmap']:.0f} | {r['shard_map']:.0f} | "
              f"{r['shard_map'] / r['pmap']:.2f} |")

    times = overhead(args.steps, args.batch, args.repeats, args.log_every)
    bare = times["bare jitted step"]
    print(f"\n## loop overhead, batch {args.batch}, 1 device "
          f"(default mode {jt.DEFAULT_MODE}), log_every {args.log_every}, "
          f"median of {args.repeats}")
    print("| loop | us/step | steps/s | overhead vs bare |\n|---|---|---|---|")
    for name, seconds in times.items():
        print(f"| {name} | {seconds * 1e6:.0f} | {1 / seconds:.0f} | "
              f"{100 * (seconds / bare - 1):+.1f}% |")


if __name__ == "__main__":
    main()
