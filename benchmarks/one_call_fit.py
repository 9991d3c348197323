"""One-call fitting, side by side: ``jflows.train.fit_to_data`` vs FlowJAX's ``fit_to_data``.

The same problem for both: a MAF of 5 affine layers with two hidden layers of 64 units on
the two moons (``jflows.data.toy2d.moons``, 10,000 training rows, 5,000 test rows),
Adam at the same learning rate, batch 100, a 10 % validation split, early stopping with
the same patience and the same epoch budget. FlowJAX's flow is its
``masked_autoregressive_flow`` (ReLU MADEs, a softplus-scaled affine transformer, order
reversed between layers). jflows fits the same flow (``activation="relu"``,
``batch_norm=False``, ``transformer=jb.softplus_affine_transformer()``) and, as a second
row, its MAF defaults (the MAF paper's: tanh, batch norm between layers, ``exp``-scaled
affine transformer).
Reported per library and seed: test NLL of the returned (best) params, wall seconds of
the fitting call (compilation included, which both pay), epochs run, and the lines of
user code of the call (the function bodies below, without blank lines and comments).

    python -m benchmarks.one_call_fit [--seeds 3] [--max-epochs 100] [--patience 10]
"""

from __future__ import annotations

import argparse
import inspect
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.timing import machine_description
from jflows.data import toy2d


def fit_jflows(x, seed, budget):
    import jflows.bijectors as jb
    import jflows.flows as jf
    import jflows.train as jt

    flow = jf.maf(2, num_layers=5, hidden_sizes=(64, 64), activation="relu", batch_norm=False,
                  transformer=jb.softplus_affine_transformer())
    params, state, history = jt.fit_to_data(
        jax.random.key(seed), flow, x, batch_size=100, learning_rate=budget["lr"],
        max_epochs=budget["epochs"], patience=budget["patience"], progress=False)
    return (lambda t: flow.log_prob(params, state, t)), len(history)


def fit_jflows_paper_maf(x, seed, budget):
    import jflows.flows as jf
    import jflows.train as jt

    flow = jf.maf(2, num_layers=5, hidden_sizes=(64, 64))
    params, state, history = jt.fit_to_data(
        jax.random.key(seed), flow, x, batch_size=100, learning_rate=budget["lr"],
        max_epochs=budget["epochs"], patience=budget["patience"], progress=False)
    return (lambda t: flow.log_prob(params, state, t)), len(history)


def fit_flowjax(x, seed, budget):
    from flowjax.distributions import Normal
    from flowjax.flows import masked_autoregressive_flow
    from flowjax.train import fit_to_data

    key, init_key = jax.random.split(jax.random.key(seed))
    flow = masked_autoregressive_flow(init_key, base_dist=Normal(jnp.zeros(2)),
                                      flow_layers=5, nn_width=64, nn_depth=2)
    flow, losses = fit_to_data(key, flow, x, learning_rate=budget["lr"],
                               max_epochs=budget["epochs"], max_patience=budget["patience"],
                               batch_size=100, show_progress=False)
    return flow.log_prob, len(losses["train"])


def lines_of_code(fn) -> int:
    """User code of a fitting function: its body's non-blank, non-comment lines minus the
    return line (the scoring adapter)."""
    body = inspect.getsource(fn).splitlines()[1:]
    code = [line for line in body if line.strip() and not line.strip().startswith("#")]
    return len(code) - 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    args = parser.parse_args()
    budget = {"epochs": args.max_epochs, "patience": args.patience, "lr": args.learning_rate}
    rng = np.random.default_rng(0)
    train = toy2d.moons(10_000, rng).astype(np.float32)
    test = jnp.asarray(toy2d.moons(5_000, rng).astype(np.float32))
    print(machine_description())
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    fits = {"jflows": fit_jflows, "FlowJAX": fit_flowjax,
            "jflows, MAF-paper defaults": fit_jflows_paper_maf}
    results = {name: [] for name in fits}
    for seed in range(args.seeds):  # interleaved, so load changes hit both alike
        for name, fit in fits.items():
            start = time.perf_counter()
            log_prob, epochs = fit(train, seed, budget)
            seconds = time.perf_counter() - start
            nll = -float(jnp.mean(log_prob(test)))
            results[name].append((nll, seconds, epochs))
            print(f"seed {seed} {name}: test NLL {nll:.4f}, {seconds:.1f} s, {epochs} epochs",
                  flush=True)
    print(f"\n## one-call fit, moons, MAF 5 x (64, 64), batch 100, lr {args.learning_rate}, "
          f"max {args.max_epochs} epochs, patience {args.patience}, {args.seeds} seeds")
    print("| library | test NLL (mean over seeds ± s.e.) | seconds (median) | epochs (median) "
          "| lines of user code |\n|---|---|---|---|---|")
    for name, rows in results.items():
        nlls = [r[0] for r in rows]
        error = statistics.stdev(nlls) / len(nlls) ** 0.5 if len(nlls) > 1 else float("nan")
        print(f"| {name} | {statistics.mean(nlls):.4f} ± {error:.4f} | "
              f"{statistics.median(r[1] for r in rows):.1f} | "
              f"{statistics.median(r[2] for r in rows):.0f} | {lines_of_code(fits[name])} |")
    jf_nll = statistics.mean(r[0] for r in results["jflows"])
    fj_nll = statistics.mean(r[0] for r in results["FlowJAX"])
    ratio = (statistics.median(r[1] for r in results["FlowJAX"])
             / statistics.median(r[1] for r in results["jflows"]))
    print(f"\njflows - FlowJAX test NLL: {jf_nll - fj_nll:+.4f} nats (negative: jflows "
          f"better); FlowJAX / jflows seconds: {ratio:.2f}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
