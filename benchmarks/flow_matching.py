"""Flow matching vs maximum-likelihood FFJORD: step cost, time to a test NLL, NFE.

The same vector field (``ConcatTimeMLP(hidden=(64, 64))``, tanh) on 2-D moons, batch 256,
source ``N(0, I)``, one FFJORD block (``t0 = 0`` source, ``t1 = 1`` data):

* **time to a test NLL**: ``experiments.flow_matching_toy``'s side-by-side run on moons
  (I-CFM, OT-CFM and maximum-likelihood FFJORD with ``BacksolveAdjoint`` through
  ``jflows.train.fit``, the same CPU-second budget each, interleaved chunks): CPU seconds
  until the exact-trace test NLL reaches the target (the worst of the three best NLLs),
  and the NFE of a sampling solve and of a density solve of each resulting flow
  (Dopri5, rtol = atol = 1e-5).
* **seconds per training step** (median of interleaved repeats, jitted, one device):
  I-CFM, OT-CFM (the exact assignment on the host), and the maximum-likelihood step with
  each diffrax adjoint -- ``RecursiveCheckpointAdjoint`` (plain ``jit`` only: under
  ``fit``'s ``shard_map`` it fails, diffrax issue #765), ``BacksolveAdjoint``,
  ``DirectAdjoint`` -- at the params maximum likelihood reached (its solver's work
  depends on them; the CFM steps' does not). The first call of each (compilation) is
  not timed.

Run: ``python -m benchmarks.flow_matching`` (``--quick``: a smoke run).
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import diffrax
import jax
import jax.numpy as jnp
import optax

import jflows.train as jt
from benchmarks.timing import interleaved_timings, machine_description
from experiments.ffjord_toy.main import load_toy, make_loss
from experiments.flow_matching_toy.config import Config
from experiments.flow_matching_toy.main import compare
from jflows.distributions import standard_normal
from jflows.nets.odenet import ConcatTimeMLP
from jflows.ode.flow_matching import cfm_flow, cfm_loss

ADJOINTS = {"recursive_checkpoint": diffrax.RecursiveCheckpointAdjoint(),
            "backsolve": diffrax.BacksolveAdjoint(), "direct": diffrax.DirectAdjoint()}


def step_functions(config: Config, params, batch) -> dict:
    """``name -> (() -> new train state)``: one jitted training step of each kind."""
    field = ConcatTimeMLP(hidden=config.toy_hidden)
    optimizer = optax.adam(config.learning_rate)
    controller = diffrax.PIDController(rtol=config.train_rtol, atol=config.train_atol)

    def flow(adjoint=ADJOINTS["backsolve"]):
        return cfm_flow(field, standard_normal((2,)), solver=diffrax.Dopri5(),
                        stepsize_controller=controller, adjoint=adjoint)

    losses = {"cfm_independent": cfm_loss(flow(), field),
              "cfm_ot": cfm_loss(flow(), field, coupling="ot")}
    losses.update({f"ffjord_ml_{name}": make_loss(flow(adjoint))
                   for name, adjoint in ADJOINTS.items()})
    state = jt.TrainState.create(params=params, model_state=flow().init(jax.random.key(0))[1],
                                 optimizer=optimizer, key=jax.random.key(1))
    functions = {}
    for name, loss_fn in losses.items():
        step = jax.jit(jt.make_train_step(loss_fn, optimizer, axis_name=None))
        functions[name] = lambda step=step: step(state, batch)[0].params
    return functions


def main(config: Config, repeats: int) -> dict:
    print(machine_description())
    data, test = load_toy("moons", config)
    side_by_side, runs = compare("moons", data, test, config.toy_hidden, config.toy_budget_s,
                                 config)
    print(f"\nmoons, {config.toy_budget_s:g} CPU s of training each; target test NLL "
          f"{side_by_side['target_nll']:.4f} (the worst of the three best)")
    print("| method | steps | CPU s to target | final test NLL | NFE sample | NFE density |")
    print("|---|---|---|---|---|---|")
    for method in ("cfm_independent", "cfm_ot", "ffjord_ml"):
        r = side_by_side[method]
        print(f"| {method} | {r['steps']} | {r['cpu_s_to_target']:.1f} | {r['nll_test']:.4f} | "
              f"{r['nfe_sample']} | {r['nfe_density']} |")
    batch = jnp.asarray(data[: config.batch_size])
    functions = step_functions(config, runs["ffjord_ml"]["params"], batch)
    timings = interleaved_timings(functions, repeats)["median"]
    base = timings["cfm_independent"]
    print(f"\nseconds per training step (batch {config.batch_size}, median of {repeats}, "
          "interleaved), ratio to I-CFM")
    print("| step | s/step | x I-CFM |")
    print("|---|---|---|")
    for name, seconds in timings.items():
        print(f"| {name} | {seconds:.4g} | {seconds / base:.1f} |")
    return {"side_by_side": side_by_side, "seconds_per_step": timings}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=20.0, help="CPU s per method")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    config = dataclasses.replace(Config(), toy_budget_s=args.budget, evaluations=8)
    if args.quick:
        config = dataclasses.replace(config, num_points=1024, num_test_points=256,
                                     toy_budget_s=2.0, evaluations=2, eval_points=128)
    results = main(config, 3 if args.quick else args.repeats)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
