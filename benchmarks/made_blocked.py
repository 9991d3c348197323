"""Degree-blocked MADE evaluation: choosing G, and MAF density/training vs the peers.

    python -m benchmarks.made_blocked groups    # G sweep: one MADE per size, G = 1..16
    python -m benchmarks.made_blocked compare   # MAF: blocked vs dense vs FlowJAX vs TFP-JAX
    python -m benchmarks.made_blocked mnist     # the maf_mnist model's step, blocked vs dense

``groups`` times, for each configuration ``(D, H)`` (2 hidden layers of ``H`` tanh units,
``K = 2``), one MADE's density pass and its gradient (the backward pass of a training
step) with every layer cut into ``G`` groups (:func:`jflows.nets.made_blocked.blocked_layout`
with ``groups=G``; ``G = 1`` is one product per layer, i.e. dense), interleaved, and
prints the time relative to the dense masked product. The table
``jflows.nets.made_blocked.GROUPS_BY_UNITS`` was read off its output.

``compare`` times the MAF stacks of ``benchmarks/maf.py`` (no batch norm, tanh, standard
normal base; FlowJAX's ``masked_autoregressive_flow``; TFP-JAX's
``tfb.MaskedAutoregressiveFlow`` chained over a standard normal, whose network is a
dense masked MADE, the algorithm of TFP's ``AutoregressiveNetwork``, which does not run on
the JAX substrate) at ``D = 8`` (10 layers, 2 x 100), ``D = 64`` (5 x 2 x 512) and
``D = 784`` (5 x 2 x 1024): density points/s of a batch and Adam training steps/s on a
batch of 100. ``jflows-dense`` is the same ``jflows.flows.maf`` with every MADE built with
``evaluation="dense"``. All timed calls are interleaved round-robin and the fastest round
is kept, by CPU time (``time.process_time``; wall time in parentheses: the machine may be
shared, the load average is printed before and after).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import os
import time
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np

import benchmarks.maf as peers
from benchmarks.timing import machine_description
from jflows.nets import MADE

# The module itself (the attribute ``jflows.flows.maf`` is the function of that name).
MAF_MODULE = importlib.import_module("jflows.flows.maf")

# (D, layers, hidden, density batch) of the comparison.
CONFIGS = {8: (10, (100, 100), 10_000), 64: (5, (512, 512), 2_000),
           784: (5, (1024, 1024), 500)}
GROUPS = (1, 2, 4, 8, 16)  # of the sweep


def load() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


@contextlib.contextmanager
def mades_evaluated(evaluation: str):
    """Every MADE that ``jflows.flows.maf`` and ``benchmarks.maf`` build in this block uses
    ``evaluation`` (the peers' builders in ``benchmarks.maf`` take no such option)."""
    made = functools.partial(MADE, evaluation=evaluation)
    with mock.patch.object(MAF_MODULE, "MADE", made), \
            mock.patch.object(peers, "MADE", made):
        yield


def time_rounds(functions: dict, repeats: int) -> dict:
    """``{name: (best CPU seconds, best wall seconds)}`` per call of each (compiled)
    function, timed round-robin; CPU time (``time.process_time``, all this process's
    threads) is what other processes on a shared machine disturb least."""
    for fn in functions.values():
        jax.block_until_ready(fn())
    best = {name: (float("inf"), float("inf")) for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            cpu, wall = time.process_time(), time.perf_counter()
            jax.block_until_ready(fn())
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            best[name] = (min(best[name][0], cpu), min(best[name][1], wall))
    return best


def groups_sweep(args) -> None:
    print("\n## G sweep: CPU time relative to the dense masked product (G = 1: one block; "
          "wall-time ratio in parentheses)")
    print("| D | H | batch | pass | dense ms (CPU) | "
          + " | ".join(f"G={g}" for g in args.groups) + " |")
    print("|---|---|---|---|---|" + "---|" * len(args.groups))
    for dim in args.dims:
        _, hidden, batch = CONFIGS[dim]
        x = jax.random.normal(jax.random.key(0), (batch, dim))
        mades = {"dense": MADE(dim, hidden, evaluation="dense"),
                 **{g: MADE(dim, hidden, blocked_groups=g) for g in args.groups}}
        params = mades["dense"].init(jax.random.key(1), x)["params"]
        reference = mades["dense"].apply({"params": params}, x)
        for g in args.groups:
            np.testing.assert_allclose(mades[g].apply({"params": params}, x), reference,
                                       rtol=1e-4, atol=1e-5)
        for kind in ("density", "gradient"):
            functions = {}
            for name, made in mades.items():
                def density(p, made=made, x=x):
                    return made.apply({"params": p}, x)
                run = jax.jit(density if kind == "density"
                              else jax.grad(lambda p, f=density: jnp.sum(jnp.tanh(f(p)))))
                functions[name] = functools.partial(run, params)
            best = time_rounds(functions, args.repeats)
            cpu, wall = best["dense"]
            ratios = " | ".join(f"{best[g][0] / cpu:.2f} ({best[g][1] / wall:.2f})"
                                for g in args.groups)
            print(f"| {dim} | {hidden[0]} | {batch} | {kind} | {1e3 * cpu:.1f} | {ratios} |",
                  flush=True)


def models(dim, layers, hidden):
    with mades_evaluated("blocked"):
        blocked = peers.jflows_model(dim, layers, hidden)
    with mades_evaluated("dense"):
        dense = peers.jflows_model(dim, layers, hidden)
        tfp = peers.tfp_model(dim, layers, hidden)
    return {"jflows-blocked": blocked, "jflows-dense": dense,
            "flowjax": peers.flowjax_model(dim, layers, hidden), "tfp": tfp}


def compare(args) -> None:
    for dim in args.dims:
        layers, hidden, density_batch = CONFIGS[dim]
        key = jax.random.key(1)
        x_density = jax.random.normal(key, (density_batch, dim))
        x_train = jax.random.normal(jax.random.fold_in(key, 1), (args.train_batch, dim))
        built = models(dim, layers, hidden)
        blocked, dense = built["jflows-blocked"], built["jflows-dense"]
        np.testing.assert_allclose(jax.jit(blocked[0])(blocked[3], x_density[:100]),
                                   jax.jit(dense[0])(blocked[3], x_density[:100]),
                                   rtol=1e-4, atol=1e-3)
        functions, items = {}, {"density": density_batch, "train": args.train_steps}
        for name, (log_prob, train_log_prob, _, params) in built.items():
            loss = lambda p, x, f=train_log_prob: -jnp.mean(f(p, x))  # noqa: E731
            functions[name, "density"] = functools.partial(jax.jit(log_prob), params, x_density)
            functions[name, "train"] = peers.adam_loop(loss, params, x_train, args.train_steps)
        best = time_rounds(functions, args.repeats)
        rate = {key: (items[key[1]] / cpu, items[key[1]] / wall)
                for key, (cpu, wall) in best.items()}
        print(f"\n## D = {dim}: {layers} layers x {hidden}, density batch {density_batch}, "
              f"train batch {args.train_batch} ({load()})")
        print("| library | density points/s | train steps/s | blocked / this (density) "
              "| blocked / this (train) |")
        print("|---|---|---|---|---|")
        for name in built:
            cells = [f"{rate[name, m][0]:,.1f} ({rate[name, m][1]:,.1f})"
                     for m in ("density", "train")]
            ratios = [f"{rate['jflows-blocked', m][0] / rate[name, m][0]:.2f}x "
                      f"({rate['jflows-blocked', m][1] / rate[name, m][1]:.2f}x)"
                      for m in ("density", "train")]
            print(f"| {name} | {' | '.join(cells)} | {' | '.join(ratios)} |", flush=True)


def mnist(args) -> None:
    """The ``experiments/maf_mnist`` model (MAF(5), 2 x 1024 ReLU, batch norm, batch 100):
    Adam steps/s and seconds per epoch (500 steps) with blocked and with dense MADEs."""
    x = jax.random.normal(jax.random.key(1), (100, 784))
    functions = {}
    for evaluation in ("blocked", "dense"):
        with mades_evaluated(evaluation):
            flow = MAF_MODULE.maf(784, 5, (1024, 1024), activation="relu")
        params, state = flow.init(jax.random.key(0))

        def loss(p, v, flow=flow, state=state):
            return -jnp.mean(flow.log_prob_and_state(p, state, v, train=True)[0])

        functions[evaluation] = peers.adam_loop(loss, params, x, args.train_steps)
    best = time_rounds(functions, args.repeats)
    print(f"\n## maf_mnist model: MAF(5), 2 x 1024 ReLU, batch norm, batch 100 ({load()})")
    print("| MADE evaluation | s/step (CPU) | s/step (wall) | s/epoch (500 steps, wall) |")
    print("|---|---|---|---|")
    for name, (cpu, wall) in best.items():
        steps = args.train_steps
        print(f"| {name} | {cpu / steps:.3f} | {wall / steps:.3f} | {500 * wall / steps:.0f} |")
    print(f"\ndense / blocked: {best['dense'][0] / best['blocked'][0]:.2f}x (CPU), "
          f"{best['dense'][1] / best['blocked'][1]:.2f}x (wall)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", choices=("groups", "compare", "mnist"))
    parser.add_argument("--dims", type=int, nargs="+", default=list(CONFIGS),
                        choices=list(CONFIGS))
    parser.add_argument("--groups", type=int, nargs="+", default=list(GROUPS),
                        help="the G values of the sweep")
    parser.add_argument("--train-batch", type=int, default=100)
    parser.add_argument("--train-steps", type=int, default=5, help="steps per timed call")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"# MADE blocked benchmark ({args.part}); {machine_description()}; {load()}")
    print(f"# best of {args.repeats} interleaved rounds")
    {"groups": groups_sweep, "compare": compare, "mnist": mnist}[args.part](args)
    print(f"\n# done; {load()}")


if __name__ == "__main__":
    main()
