"""Flow matching vs maximum-likelihood FFJORD on the 2-D toys and the MINIBOONE sample.

Every method trains the same vector field (``ConcatTimeMLP``, tanh) from the same initial
params, with Adam at the same rate on batches of the same size, for the same budget of CPU
seconds, in interleaved chunks (one ``jflows.train.fit`` call per chunk; compilation is
done and timed before the clock starts, once per field: the toys share it):

* ``ffjord_ml``: maximum likelihood through the ODE, as ``experiments.ffjord_toy`` trains
  (its loss; Dopri5 at rtol 1e-3 / atol 1e-5, ``BacksolveAdjoint``; exact trace on the
  toys, Hutchinson on 43-D MINIBOONE), one FFJORD block on ``N(0, I)``.
* ``cfm_independent`` / ``cfm_ot``: :func:`jflows.ode.flow_matching.cfm_loss` (I-CFM /
  OT-CFM), no ODE solve in training.

All three are then the same kind of object, ``cfm_flow(field, N(0, I))`` (one FFJORD
block, ``t0 = 0`` source, ``t1 = 1`` data), evaluated with the exact trace at
rtol = atol = 1e-5: test NLL along training and at the end, NFE of a sampling solve and
of a density solve, density and sample figures.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from pathlib import Path

import diffrax
import jax
import numpy as np
import optax

import jflows.data as jdata
import jflows.train as jt
from experiments.ffjord_toy import plots as toy_plots
from experiments.ffjord_toy.main import load_toy, make_loss, negative_log_likelihood
from experiments.flow_matching_toy import plots
from experiments.flow_matching_toy.config import METHODS, Config
from experiments.maf_demo.main import load_sample
from jflows.data.uci import miniboone_preprocess
from jflows.distributions import standard_normal
from jflows.nets.odenet import ConcatTimeMLP
from jflows.ode import exact_trace, hutchinson_trace
from jflows.ode.flow_matching import cfm_flow, cfm_loss


def make_flows(hidden, dim: int, config: Config, hutchinson: bool):
    """``(field, training flow, evaluation flow)``: one field, two solver settings."""
    field = ConcatTimeMLP(hidden=hidden)
    source = standard_normal((dim,))
    train_flow = cfm_flow(
        field, source, solver=diffrax.Dopri5(),
        stepsize_controller=diffrax.PIDController(rtol=config.train_rtol, atol=config.train_atol),
        adjoint=diffrax.BacksolveAdjoint(),
        trace=hutchinson_trace("rademacher") if hutchinson else exact_trace(),
        eval_trace=exact_trace())
    eval_flow = cfm_flow(field, source, stepsize_controller=diffrax.PIDController(
        rtol=config.eval_tol, atol=config.eval_tol))
    return field, train_flow, eval_flow


@functools.lru_cache(maxsize=8)
def setup(hidden, dim: int, config: Config, hutchinson: bool):
    """``(train_flow, eval_flow, optimizer, {method: train_step})``, built once per field so
    that the toys (all 2-D) share one compilation of each step and each evaluation."""
    field, train_flow, eval_flow = make_flows(hidden, dim, config, hutchinson)
    optimizer = optax.adam(config.learning_rate)
    losses = {"ffjord_ml": make_loss(train_flow),
              "cfm_independent": cfm_loss(train_flow, field, sigma=config.sigma),
              "cfm_ot": cfm_loss(train_flow, field, sigma=config.sigma, coupling="ot")}
    steps = {method: jt.make_train_step(loss_fn, optimizer) for method, loss_fn in losses.items()}
    return train_flow, eval_flow, optimizer, steps


@dataclasses.dataclass
class Trainer:
    """One method's training: its state, step, batches and clocks."""

    state: jt.TrainState
    step: object
    batches: jdata.BatchIterator
    cpu_s: float = 0.0
    wall_s: float = 0.0
    compile_cpu_s: float = 0.0
    curve: list = dataclasses.field(default_factory=list)

    def fit(self, state, steps: int):
        """``state`` trained by ``fit`` up to global step ``steps`` (from its own step)."""
        epochs = -(-steps // self.batches.steps_per_epoch)
        return jt.fit(state, self.step, self.batches, epochs=epochs, max_steps=steps,
                      logging=jt.Logging(every=self.batches.steps_per_epoch, progress=False,
                                         tensorboard=False)).state

    def compile(self):
        """One step on a copy of the state: compiles (cached) without training ``state``."""
        start = time.process_time()
        jax.block_until_ready(self.fit(self.state, 1).params)
        self.compile_cpu_s = time.process_time() - start

    def advance(self, budget: float, fraction: float = 1 / 16):
        """Train about ``fraction`` of ``budget`` CPU seconds (never far past ``budget``):
        the chunk's step count comes from the last chunk's seconds per step."""
        steps = int(self.state.step)
        if steps == 0:
            chunk = 2
        else:
            per_step = self.cpu_s / steps
            chunk = max(1, min(round(fraction * budget / per_step),
                               round((budget - self.cpu_s) / per_step) + 1))
        cpu, wall = time.process_time(), time.perf_counter()
        self.state = self.fit(self.state, steps + chunk)
        jax.block_until_ready(self.state.params)
        self.cpu_s += time.process_time() - cpu
        self.wall_s += time.perf_counter() - wall


def nfe(flow, params, state, x, direction: str) -> int:
    """Function evaluations of one batched solve (each row's NFE: one solve per batch)."""
    call = getattr(flow.bijector, f"{direction}_with_info")
    info = jax.jit(lambda p, s, v: call(p, s, v)[3])(params["bijector"], state["bijector"], x)
    return int(info.nfe)


def compare(name: str, data: np.ndarray, test: np.ndarray, hidden, budget: float,
            config: Config, hutchinson: bool = False) -> tuple[dict, dict]:
    """Train every method on ``data`` for ``budget`` CPU seconds; returns (results, runs)."""
    train_flow, eval_flow, optimizer, steps = setup(hidden, data.shape[1], config, hutchinson)
    params, state = train_flow.init(jax.random.key(config.seed))
    trainers = {}
    for method, step in steps.items():
        trainer = Trainer(
            jt.TrainState.create(params=params, model_state=state, optimizer=optimizer,
                                 key=jax.random.key(config.seed + 1)),
            step,
            jdata.BatchIterator(data.astype(np.float32), config.batch_size, seed=config.seed))
        trainer.compile()
        trainers[method] = trainer
    eval_x = test[: config.eval_points]
    marks = {m: [budget * (k + 1) / config.evaluations for k in range(config.evaluations)]
             for m in METHODS}
    while any(t.cpu_s < budget for t in trainers.values()):
        for method, trainer in trainers.items():
            if trainer.cpu_s >= budget:
                continue
            trainer.advance(budget)
            if trainer.cpu_s >= marks[method][0] or trainer.cpu_s >= budget:
                while marks[method] and trainer.cpu_s >= marks[method][0]:
                    marks[method].pop(0)
                nll = negative_log_likelihood(eval_flow, trainer.state.params,
                                              trainer.state.model_state, eval_x)
                trainer.curve.append((trainer.cpu_s, trainer.wall_s, int(trainer.state.step),
                                      nll))
                print(f"[flow_matching_toy] {name} {method}: {trainer.cpu_s:.1f} CPU s, "
                      f"step {int(trainer.state.step)}, test NLL ({len(eval_x)} pts) "
                      f"{nll:.4f}", flush=True)
    # The NLL every method reached (the worst of the best), and when each reached it.
    target = max(min(c[3] for c in t.curve) for t in trainers.values())
    results, runs = {}, {}
    base = eval_flow.base.sample(params["base"], state["base"], jax.random.key(7), (1024,))
    for method, trainer in trainers.items():
        p, s = trainer.state.params, trainer.state.model_state
        results[method] = {
            "nll_test": negative_log_likelihood(eval_flow, p, s, test),
            "nll_train": negative_log_likelihood(eval_flow, p, s, data[: len(test)]),
            "cpu_s": trainer.cpu_s, "wall_s": trainer.wall_s, "steps": int(trainer.state.step),
            "compile_cpu_s": trainer.compile_cpu_s,
            "nfe_sample": nfe(eval_flow, p, s, base, "forward"),
            "nfe_density": nfe(eval_flow, p, s, test[:1024], "inverse"),
            "cpu_s_to_target": next(c[0] for c in trainer.curve if c[3] <= target),
            "curve": [dict(zip(("cpu_s", "wall_s", "step", "nll"), c, strict=True))
                      for c in trainer.curve],
        }
        runs[method] = {"flow": eval_flow, "params": p, "state": s, "data": data}
        print(f"[flow_matching_toy] {name} {method}: " + ", ".join(
            f"{k} {v:.4g}" for k, v in results[method].items() if k != "curve"), flush=True)
    results["target_nll"] = target
    return results, runs


def main(config: Config) -> dict:
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results, toy_runs = {"config": dataclasses.asdict(config)}, {}
    started = time.perf_counter()
    for toy in config.toys:
        data, test = load_toy(toy, config)
        results[toy], toy_runs[toy] = compare(toy, data, test, config.toy_hidden,
                                              config.toy_budget_s, config)
    if config.miniboone:
        train, _, test = miniboone_preprocess(load_sample(config.miniboone_path)[0])
        results["miniboone"], _ = compare("miniboone", train, test, config.miniboone_hidden,
                                          config.miniboone_budget_s, config, hutchinson=True)
    if toy_runs:
        for method in METHODS:
            toy_plots.density_grid({toy: runs[method] for toy, runs in toy_runs.items()},
                                   out / f"density_grid_{method}.png",
                                   resolution=config.density_resolution)
    plots.nll_curves({k: v for k, v in results.items() if k != "config"},
                     out / "nll_vs_cpu_seconds.png")
    results["wall_seconds_in_all"] = time.perf_counter() - started
    with (out / "results.json").open("w") as f:
        json.dump(results, f, indent=2)
    return results
