"""FFJORD on 2-D toys: the TFP FFJORD tutorial with jflows, the other toys, RNODE.

The flow is ``transformed(N(0, 0.8^2 I), chain(ffjord, ffjord, ffjord, ffjord))``, each
block's vector field the tutorial's MLP on ``[z, t]`` (tanh, 8 hidden units, 3 layers),
solved by Dopri5 at ``rtol = 1e-3, atol = 1e-5`` with the exact trace. Training is
``jflows.train.fit`` on ``jflows.data.BatchIterator`` batches of 256, Adam at 1e-2 for 40
epochs; the loss is the NLL plus the RNODE penalty when it is on.

Parts (each writes under ``out_dir``):

* ``moons``: the tutorial: 4-panel figures (warped grid, base samples, transformed
  samples, data) before and after training, final NLL and seconds per epoch.
* ``toys``: the same on :data:`~experiments.ffjord_toy.config.OTHER_TOYS`, and a grid of
  learned densities (``density_grid.png``) with moons.
* ``rnode``: moons with RNODE (kinetic energy + Jacobian Frobenius, each weight of
  ``RNODE_WEIGHTS`` for both) at the tutorial's tolerances and at the paper's
  (``PAPER_TOLERANCES``): NFE per solve, seconds per epoch and NLL against the plain runs.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import statistics
import time
from pathlib import Path

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optax

import jflows.bijectors as jb
import jflows.data as jdata
import jflows.train as jt
from experiments.chunked import map_in_chunks
from experiments.ffjord_toy import plots
from experiments.ffjord_toy.config import OTHER_TOYS, PAPER_TOLERANCES, RNODE_WEIGHTS, Config
from jflows.distributions import diag_normal, transformed
from jflows.nets.odenet import ConcatTimeMLP
from jflows.ode import (
    exact_trace,
    ffjord,
    hutchinson_trace,
    regularization_penalty,
    rnode,
    solve_metrics,
)


def make_flow(config: Config):
    """The tutorial's flow: 4 FFJORD blocks on a fixed N(0, 0.8^2 I) base."""
    trace = exact_trace() if config.trace == "exact" else hutchinson_trace("rademacher")
    adjoint = {"backsolve": diffrax.BacksolveAdjoint(),
               "recursive": diffrax.RecursiveCheckpointAdjoint()}[config.adjoint]
    block = ffjord(
        ConcatTimeMLP(hidden=config.hidden),
        solver=diffrax.Dopri5(),
        stepsize_controller=diffrax.PIDController(rtol=config.rtol, atol=config.atol),
        adjoint=adjoint,
        trace=trace,
        eval_trace=exact_trace(),
        regularization=rnode(config.kinetic_weight, config.jacobian_weight),
    )
    base = diag_normal((2,), loc=0.0, scale=config.base_scale)
    return transformed(base, jb.chain(*[block] * config.num_blocks))


def make_loss(flow):
    """``loss_fn`` for :func:`jflows.train.make_train_step`: NLL + RNODE penalty.

    The penalty and the solve metrics (NFE, steps, RNODE integrals, failed solves) come
    from the info of the training pass; the flow's state is empty.
    """

    def loss_fn(params, model_state, batch, key):
        log_prob, new_state, info = flow.log_prob_and_state(params, model_state, batch,
                                                            key=key)
        nll = -jnp.mean(log_prob)
        metrics = {"nll": nll, **solve_metrics(info)}
        return nll + regularization_penalty(info), (new_state, metrics)

    return loss_fn


def negative_log_likelihood(flow, params, state, x, chunk: int = 4096) -> float:
    """Mean NLL of ``x`` with the exact trace (``train=False``), in chunks."""
    return float(-np.mean(map_in_chunks(flow.log_prob, (params, state), (x,), chunk)))


def train(config: Config, data: np.ndarray, test: np.ndarray, workdir: Path) -> dict:
    """Fit the flow to ``data``; returns params, state, NLLs, timings and NFE per epoch."""
    shutil.rmtree(workdir, ignore_errors=True)
    flow = make_flow(config)
    params, state = flow.init(jax.random.key(config.seed))
    optimizer = optax.adam(config.learning_rate)
    train_state = jt.TrainState.create(params=params, model_state=state, optimizer=optimizer,
                                       key=jax.random.key(config.seed + 1))
    batches = jdata.BatchIterator(data, config.batch_size, seed=config.seed)
    start = time.perf_counter()
    result = jt.fit(train_state, jt.make_train_step(make_loss(flow), optimizer), batches,
                    epochs=config.epochs, workdir=workdir,
                    logging=jt.Logging(every=batches.steps_per_epoch, progress=config.progress,
                                       tensorboard=False))
    wall = time.perf_counter() - start
    params, state = result.state.params, result.state.model_state
    epoch_seconds = [record["seconds"] for record in result.history]
    history = [record["train"] for record in result.history]
    return {
        "flow": flow, "params": params, "state": state, "initial_params": train_state.params,
        "nll_train_initial": negative_log_likelihood(flow, train_state.params, state, data),
        "nll_train": negative_log_likelihood(flow, params, state, data),
        "nll_test": negative_log_likelihood(flow, params, state, test),
        "wall_seconds": wall,
        # The first epoch includes compilation.
        "seconds_per_epoch": statistics.median(epoch_seconds[1:] or epoch_seconds),
        "first_epoch_seconds": epoch_seconds[0],
        "nfe_per_solve": [h["nfe_per_solve"] for h in history],
        "train_nll": [h["nll"] for h in history],
        "kinetic_energy": [h["kinetic_energy"] for h in history],
        "jacobian_frobenius": [h["jacobian_frobenius"] for h in history],
    }


def load_toy(name: str, config: Config):
    train_points = jdata.sample_toy(name, config.num_points, seed=[config.seed, 0])
    test_points = jdata.sample_toy(name, config.num_test_points, seed=[config.seed, 1])
    return train_points, test_points


def summary(name: str, run: dict, config: Config) -> dict:
    return {
        "dataset": name, "epochs": config.epochs, "nll_train_initial": run["nll_train_initial"],
        "nll_train": run["nll_train"],
        "nll_test": run["nll_test"], "seconds_per_epoch": run["seconds_per_epoch"],
        "first_epoch_seconds": run["first_epoch_seconds"], "wall_seconds": run["wall_seconds"],
        "final_nfe_per_solve": run["nfe_per_solve"][-1], "nfe_per_solve": run["nfe_per_solve"],
        "train_nll_per_epoch": run["train_nll"],
        "kinetic_energy_per_epoch": run["kinetic_energy"],
        "jacobian_frobenius_per_epoch": run["jacobian_frobenius"],
        "kinetic_weight": config.kinetic_weight, "jacobian_weight": config.jacobian_weight,
    }


def main(config: Config, parts=("moons", "toys", "rnode"), toys=OTHER_TOYS) -> dict:
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results, runs = {}, {}
    key = jax.random.key(config.seed + 2)

    def run(name, run_config, tag):
        data, test = load_toy(name, run_config)
        started = time.perf_counter()
        runs[tag] = train(run_config, data, test, out / tag)
        runs[tag]["data"] = data
        results[tag] = summary(name, runs[tag], run_config)
        print(f"[ffjord_toy] {tag}: NLL train {results[tag]['nll_train']:.4f} test "
              f"{results[tag]['nll_test']:.4f}, {results[tag]['seconds_per_epoch']:.2f} s/epoch,"
              f" NFE/solve {results[tag]['final_nfe_per_solve']:.1f}, "
              f"{time.perf_counter() - started:.0f} s in all", flush=True)

    if "moons" in parts or "rnode" in parts:
        run("moons", config, "moons")
        moons = runs["moons"]
        if "moons" in parts:
            for when, params in (("start", moons["initial_params"]), ("end", moons["params"])):
                plots.four_panel(moons["flow"], params, moons["state"], moons["data"], key,
                                 out / f"moons_{when}.png", f"moons, {when} of training")
    if "rnode" in parts:
        rtol, atol = PAPER_TOLERANCES
        paper = dataclasses.replace(config, rtol=rtol, atol=atol)
        run("moons", paper, "moons_paper_tol")
        for weight in RNODE_WEIGHTS:
            for prefix, base_config in (("moons", config), ("moons_paper_tol", paper)):
                tag = f"{prefix}_rnode_{weight:g}"
                run("moons", dataclasses.replace(base_config, kinetic_weight=weight,
                                                 jacobian_weight=weight), tag)
        plots.rnode_comparison(
            {prefix: {tag: results[tag] for tag in results
                      if tag == prefix or tag.startswith(f"{prefix}_rnode")}
             for prefix in ("moons", "moons_paper_tol")},
            out / "rnode.png")
        tag = f"moons_paper_tol_rnode_{RNODE_WEIGHTS[-1]:g}"
        plots.four_panel(runs[tag]["flow"], runs[tag]["params"], runs[tag]["state"],
                         runs[tag]["data"], key, out / f"{tag}_end.png",
                         f"moons, paper tolerances, RNODE {RNODE_WEIGHTS[-1]:g}, end of training")
    if "toys" in parts:
        for name in toys:
            run(name, config, name)
        shown = [tag for tag in ("moons", *toys) if tag in runs]
        plots.density_grid({tag: runs[tag] for tag in shown}, out / "density_grid.png")
    with (out / "results.json").open("w") as f:
        json.dump(results, f, indent=2)
    return results
