"""Training-layer costs: steps/s of each data-parallel mode on 1 vs 8 devices, FFJORD inside
``fit`` with each adjoint, and ``fit``'s overhead.

Model: MAF on 8-D data (GAS-sized): 5 MADE layers with two hidden layers of 100 units and
batch norm (``jflows.flows.maf``), Adam, the negative log-likelihood. Without
``jflows.flows`` (before the MAF branch lands) a stand-in from core bijectors is used
and the output says so: 5 x [low-rank affine, batch norm, leaky ReLU].

1. **Data-parallel steps/s** (child processes with 1 and 8 fake CPU devices,
   ``XLA_FLAGS=--xla_force_host_platform_device_count=N``): the train step under every mode
   of ``jt.MODES`` (``jit`` with ``NamedSharding``, ``jit(shard_map)``, ``jax.pmap``), same
   global batch, pre-placed batch, state donated; best and median of interleaved timings.
   Fake devices share this machine's cores, so 8 devices measure the cost of the
   collectives and the per-device split, not a speed-up.
1b. **FFJORD inside ``fit``** (1 device, the ``ffjord_toy`` flow: 4 blocks of a 2-8-8-2
   tanh field, Dopri5, rtol 1e-3, exact trace): seconds per step of whole ``fit`` epochs
   with diffrax's default ``RecursiveCheckpointAdjoint`` and with ``BacksolveAdjoint``, in
   ``"jit"`` mode and (backsolve only: the recursive adjoint cannot be differentiated
   there, diffrax #765) ``"shard_map"`` mode, interleaved.
2. **Loop overhead**: the wall time of a whole ``fit`` call (default mode, 1 device, a
   ``BatchIterator``, metric fetches every ``log_every`` steps, progress bar off / on, no
   workdir; also with the prefetch thread that is the default on accelerators) against a
   bare Python loop calling the ``jax.jit``-ed single-device step (``axis_name=None``,
   ``donate_argnums=0``) on the same ``BatchIterator``'s host batches, and against a bare
   loop over the 1-device ``data_parallel`` runner fit uses; all
   compiled beforehand (``fit`` reuses its compiled step when called again with the
   same ``train_step``). Reported: wall time of the best run (least disturbed by other
   load on the machine) and of the median run of ``--repeats`` interleaved ones, and the
   median CPU time of this process per step (the loop's own work, less sensitive to
   other processes on a shared machine).

    python -m benchmarks.train [--batch 100] [--steps 2000] [--repeats 5] [--ffjord-steps 20]

On a busy machine, pin it to one core (``taskset -c 1 python -m benchmarks.train``): with
other processes on the cores, XLA's CPU worker threads wait on each other and single
timings swing by 10-100x.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import jax
import numpy as np
import optax

import jflows.bijectors as jb
import jflows.distributions as jd
import jflows.train as jt
from benchmarks.timing import machine_description
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
        log_prob, model_state, _ = flow.log_prob_and_state(params, model_state, batch,
                                                           train=True)
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

def parallel_worker(global_batch: int, samples: int = 15, steps: int = 20) -> dict:
    """Steps/s of every mode on this process's devices: (best, median) over ``samples``
    timings of ``steps`` steps each, the modes interleaved."""
    loss_fn, tx, state, name = problem()
    step = jt.make_train_step(loss_fn, tx)
    batch = data(global_batch)
    runs = {}
    for mode in jt.MODES:
        runner = jt.data_parallel(step, mode)
        runs[mode] = [runner, runner.replicate(state), runner.shard(batch), []]
    for sample in range(samples + 1):
        for run in runs.values():
            runner, dstate, placed, times = run
            start = time.perf_counter()
            for _ in range(steps):
                dstate, metrics = runner(dstate, placed)
            jax.block_until_ready((dstate, metrics))
            if sample:  # the first holds the compilation
                times.append((time.perf_counter() - start) / steps)
            run[1] = dstate
    out = {"devices": jax.device_count(), "model": name}
    for mode, (_, _, _, times) in runs.items():
        out[mode] = (1 / min(times), 1 / statistics.median(times))
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


# ------------------------------------------------------------------ 1b. FFJORD adjoints

def ffjord_in_fit(batch_size: int, steps: int, repeats: int) -> dict:
    """Seconds per step of one-epoch ``fit`` calls of the ``ffjord_toy`` flow, per (adjoint,
    mode), interleaved; the first call of each (compilation) is left out."""
    import dataclasses

    from experiments.ffjord_toy.config import Config
    from experiments.ffjord_toy.main import make_flow, make_loss
    from jflows.data import toy2d

    x = toy2d.moons(batch_size * steps, np.random.default_rng(0)).astype(np.float32)
    iterator = BatchIterator(x, batch_size, seed=0)  # ffjord_toy's loss takes the array
    variants = {}
    for adjoint, mode in (("recursive", "jit"), ("backsolve", "jit"),
                          ("backsolve", "shard_map")):
        flow = make_flow(dataclasses.replace(Config(), adjoint=adjoint))
        tx = optax.adam(1e-3)
        params, model_state = flow.init(jax.random.key(0))
        state = jt.TrainState.create(params=params, model_state=model_state, optimizer=tx,
                                     key=jax.random.key(1))
        variants[(adjoint, mode)] = (state, jt.make_train_step(make_loss(flow), tx), mode)
    times = {name: [] for name in variants}
    for repeat in range(repeats + 1):
        for name, (state, step, mode) in variants.items():
            start = time.perf_counter()
            jax.block_until_ready(jt.fit(
                state, step, iterator, epochs=1, logging=jt.Logging(every=steps,
                                                                     progress=False),
                parallel=jt.Parallel(mode=mode)).state)
            if repeat:
                times[name].append((time.perf_counter() - start) / steps)
    return times


# ------------------------------------------------------------------ 2. fit overhead

def _timed(fn):
    """``(wall seconds, CPU seconds of this process)`` of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def overhead(steps: int, batch_size: int, repeats: int, log_every: int) -> dict:
    """Per variant: lists of (wall, CPU) seconds per step of ``repeats`` interleaved runs of
    ``steps`` steps, everything compiled beforehand."""
    loss_fn, tx, state, _ = problem()
    train_step = jt.make_train_step(loss_fn, tx)
    bare_loss_fn, _, bare_state, _ = problem(axis_name=None)
    bare_step = jax.jit(jt.make_train_step(bare_loss_fn, tx, axis_name=None),
                        donate_argnums=0)
    iterator = BatchIterator(data(100 * batch_size), batch_size, seed=0)

    def bare(n):
        current = jax.tree.map(jax.numpy.copy, bare_state)  # the step donates its input

        def loop():
            nonlocal current
            for _, batch in zip(range(n), iterator.from_step(0), strict=False):
                current, metrics = bare_step(current, batch)
            jax.block_until_ready((current, metrics))

        return _timed(loop)

    runner = jt.data_parallel(train_step)

    def bare_runner(n):
        current = runner.replicate(state)

        def loop():
            nonlocal current
            for _, batch in zip(range(n), iterator.from_step(0), strict=False):
                current, metrics = runner(current, batch)
            jax.block_until_ready((current, metrics))

        return _timed(loop)

    def fit(n, progress, prefetch=None):
        return _timed(lambda: jax.block_until_ready(jt.fit(
            state, train_step, iterator, epochs=1, steps_per_epoch=n,
            logging=jt.Logging(every=log_every, progress=progress),
            parallel=jt.Parallel(prefetch=prefetch)).state))

    variants = {
        "bare jitted step": bare,
        "bare loop over data_parallel(train_step)": bare_runner,
        "fit, progress bar off": lambda n: fit(n, False),
        "fit, progress bar on": lambda n: fit(n, True),
        "fit, progress bar off, prefetch=2 (thread)": lambda n: fit(n, False, prefetch=2),
    }
    for measure in variants.values():  # compile: fit reuses its compiled step when called again
        measure(log_every)
    samples = {name: [] for name in variants}
    for _ in range(repeats):  # interleaved, so load changes hit every variant alike
        for name, measure in variants.items():
            wall, cpu = measure(steps)
            samples[name].append((wall / steps, cpu / steps))
    return samples


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=100, help="batch size (global)")
    parser.add_argument("--steps", type=int, default=2000, help="steps per timed run")
    parser.add_argument("--log-every", type=int, default=100, help="fit's log_every")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--parallel-batch", type=int, default=800,
                        help="global batch of the 1-vs-8-device comparison")
    parser.add_argument("--ffjord-steps", type=int, default=20,
                        help="steps per timed FFJORD epoch")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(parallel_worker(args.worker)))
        return

    print(machine_description())
    print(f"load average before: {os.getloadavg()[0]:.1f} (other work on the machine)")
    parallel = run_parallel_children(args.parallel_batch)
    print(f"\nmodel: {parallel[0]['model']}, data dim {DIM}, Adam")
    print(f"\n## data-parallel train steps/s, global batch {args.parallel_batch}")
    print("best / median of 15 samples of 20 steps; ratios of the best against pmap")
    print("| devices | " + " | ".join(jt.MODES) + " | " + " | ".join(
        f"{m} / pmap" for m in jt.MODES if m != "pmap") + " |")
    print("|---" * (2 * len(jt.MODES)) + "|")
    for r in parallel:
        cells = [f"{r[m][0]:.0f} / {r[m][1]:.0f}" for m in jt.MODES]
        ratios = [f"{r[m][0] / r['pmap'][0]:.2f}" for m in jt.MODES if m != "pmap"]
        print(f"| {r['devices']} | " + " | ".join(cells + ratios) + " |")

    print(f"\n## FFJORD (ffjord_toy flow, batch {args.batch}) inside fit, 1 device, "
          f"{args.ffjord_steps} steps per timed epoch, best / median of {args.repeats}")
    print("| adjoint | mode | s/step best / median | vs recursive + jit |\n|---|---|---|---|")
    ffjord = ffjord_in_fit(args.batch, args.ffjord_steps, args.repeats)
    reference = min(ffjord[("recursive", "jit")])
    for (adjoint, mode), times in ffjord.items():
        print(f"| {adjoint} | {mode} | {min(times):.4f} / {statistics.median(times):.4f} | "
              f"{min(times) / reference:.2f}x |")

    samples = overhead(args.steps, args.batch, args.repeats, args.log_every)
    print(f"\n## loop overhead, batch {args.batch}, 1 device (default mode "
          f"{jt.DEFAULT_MODE}), log_every {args.log_every}, {args.repeats} interleaved runs "
          f"of {args.steps} steps")
    print("| loop | wall us/step best / median | vs bare | process CPU us/step median "
          "| vs bare |\n|---|---|---|---|---|")
    summary = {name: (min(w for w, _ in v), statistics.median(w for w, _ in v),
                      statistics.median(c for _, c in v)) for name, v in samples.items()}
    bare_best, bare_median, bare_cpu = summary["bare jitted step"]
    for name, (best, median, cpu) in summary.items():
        print(f"| {name} | {best * 1e6:.0f} / {median * 1e6:.0f} | "
              f"{100 * (best / bare_best - 1):+.1f}% / {100 * (median / bare_median - 1):+.1f}% "
              f"| {cpu * 1e6:.0f} | {100 * (cpu / bare_cpu - 1):+.1f}% |")
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
