"""FFJORD speed: jflows vs TFP-JAX's FFJORD vs a direct diffrax CNF, side by side.

The setting is the TFP FFJORD tutorial's: 2-D moons, batch 256, base N(0, 0.8^2 I),
4 stacked FFJORD blocks, each vector field an MLP on ``[z, t]`` with two tanh hidden
layers of 8 units and a linear output (3 layers), exact trace, Dormand-Prince with
``atol = 1e-5`` and TFP's default ``rtol = 1e-3``, ``t`` in ``[0, 1]``. All three
implementations run the same Flax network with the same parameters.

* **jflows**: ``transformed(diag_normal, chain(ffjord, ...))``; one batched solve per
  block (one step size for the batch).
* **TFP-JAX**: ``tfb.Chain`` of ``tfb.FFJORD`` with ``DormandPrince(atol=1e-5).solve`` and
  ``trace_jacobian_exact``, as in the tutorial. The per-solve rows use a block's
  ``_augmented_forward`` (one solve giving the value and the log-det); the stack row uses
  the public ``forward`` and ``forward_log_det_jacobian``, whose identical solves XLA
  merges under ``jit`` (the compiled program has as many solver loops as ``forward``'s).
* **diffrax direct**: written here after the diffrax CNF example (``jax.vmap`` of a
  per-point solve, exact trace from ``vjp`` rows of the identity), with the tutorial's
  solver settings.

Measured, each as the median over interleaved repeats after compilation:

* one solve: one block, forward (base -> data) with log-det, on 256 points; NFE per solve.
* the stack: forward through the 4 blocks with log-det (sampling with densities).
* a training step: ``-mean log p`` of 256 data points (data -> base), its gradient and an
  Adam update. TFP-JAX is tried and the error recorded (it cannot be differentiated).

The parameters are those of a jflows model after ``--pretrain-steps`` Adam steps on moons
(at initialisation the dynamics are nearly trivial and every solver takes a few steps).

Run: ``python -m benchmarks.ffjord`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tensorflow_probability.substrates.jax as tfp

import jflows.bijectors as jb
import jflows.data as jdata
from benchmarks.timing import interleaved_timings, machine_description
from jflows.distributions import diag_normal, transformed
from jflows.nets.odenet import ConcatTimeMLP
from jflows.ode import evaluations_per_step, ffjord, hutchinson_trace, solve_metrics

tfb, tfd = tfp.bijectors, tfp.distributions

NUM_BLOCKS = 4
BATCH = 256
RTOL, ATOL = 1e-3, 1e-5  # TFP DormandPrince(atol=1e-5): its default rtol is 1e-3
BASE_SCALE = 0.8
MAX_STEPS = 4096
FIELD = ConcatTimeMLP(hidden=(8, 8))


def controller(rtol=RTOL, atol=ATOL):
    return diffrax.PIDController(rtol=rtol, atol=atol)


PAPER_TOLERANCES = (1e-5, 1e-5)
"""FFJORD's own rtol, atol (jflows' default), measured beside the tutorial's."""


def jflows_flow(**ffjord_kwargs):
    blocks = [ffjord(FIELD, max_steps=MAX_STEPS, **ffjord_kwargs) for _ in range(NUM_BLOCKS)]
    return transformed(diag_normal((2,), loc=0.0, scale=BASE_SCALE), jb.chain(*blocks))


PAPER = dict(solver=diffrax.Dopri5(), stepsize_controller=controller())


# --------------------------------------------------------------------------------------
# The direct diffrax CNF (after the diffrax example: a per-point solve under vmap).
# --------------------------------------------------------------------------------------


def _augmented_with_exact_trace(t, y, params):
    z, _ = y
    f, vjp = jax.vjp(lambda v: FIELD.apply(params, t, v), z)
    (rows,) = jax.vmap(vjp)(jnp.eye(z.shape[-1], dtype=z.dtype))
    return f, jnp.trace(rows)


_DIRECT_TERM = diffrax.ODETerm(_augmented_with_exact_trace)


def _direct_solve(params, z, t_start, t_end, tolerances):
    solution = diffrax.diffeqsolve(
        _DIRECT_TERM, diffrax.Dopri5(), t_start, t_end, None, (z, jnp.zeros((), z.dtype)),
        args=params, stepsize_controller=controller(*tolerances), max_steps=MAX_STEPS,
    )
    (z,), (delta,) = solution.ys
    return z, delta, solution.stats["num_steps"]


def direct_forward(params_list, x, tolerances=(RTOL, ATOL)):
    """Base -> data through the blocks, per point: ``(y, log_det, num_steps per block)``."""

    def one(z):
        log_det, steps = 0.0, []
        for params in params_list:
            z, delta, n = _direct_solve(params, z, 0.0, 1.0, tolerances)
            log_det, steps = log_det + delta, steps + [n]
        return z, log_det, jnp.stack(steps)

    return jax.vmap(one)(x)


def direct_log_prob(params_list, y, tolerances=(RTOL, ATOL)):
    """``log p(y)``: data -> base, each block solved backwards from 1 to 0, per point."""
    log_normaliser = 2 * jnp.log(BASE_SCALE * jnp.sqrt(2 * jnp.pi))

    def one(z):
        delta_total = 0.0
        for params in reversed(params_list):
            z, delta, _ = _direct_solve(params, z, 1.0, 0.0, tolerances)
            delta_total = delta_total + delta
        return -0.5 * jnp.sum((z / BASE_SCALE) ** 2) - log_normaliser + delta_total

    return jax.vmap(one)(y)


# --------------------------------------------------------------------------------------
# TFP-JAX FFJORD (the tutorial's construction).
# --------------------------------------------------------------------------------------


def tfp_blocks(params_list, tolerances=(RTOL, ATOL)):
    rtol, atol = tolerances
    solver = tfp.math.ode.DormandPrince(rtol=rtol, atol=atol)
    return [
        tfb.FFJORD(
            state_time_derivative_fn=lambda t, z, p=params: FIELD.apply(p, t, z),
            ode_solve_fn=solver.solve,
            trace_augmentation_fn=tfb.ffjord.trace_jacobian_exact,
        )
        for params in params_list
    ]


def tfp_chain(params_list):
    return tfb.Chain(tfp_blocks(params_list)[::-1])  # TFP's Chain applies the last first


def tfp_nfe(params, x, tolerances=(RTOL, ATOL)):
    """Evaluations of one TFP solve (DormandPrince diagnostics, the same augmented ODE)."""
    augmented = tfb.ffjord.trace_jacobian_exact(
        lambda t, z: FIELD.apply(params, t, z), x.shape, x.dtype
    )
    rtol, atol = tolerances
    results = tfp.math.ode.DormandPrince(rtol=rtol, atol=atol).solve(
        augmented, 0.0, (x, jnp.zeros_like(x)), solution_times=[1.0]
    )
    return results.diagnostics.num_ode_fn_evaluations


def tfp_training_attempts(params_list, data):
    """Try to differentiate TFP-JAX's FFJORD two ways; return what each raised."""
    base = tfd.MultivariateNormalDiag(jnp.zeros(2), jnp.full(2, BASE_SCALE))

    def closure_loss(params_list):
        return -jnp.mean(tfd.TransformedDistribution(base, tfp_chain(params_list)).log_prob(data))

    def constants_loss(params_list):
        # The solver's own gradient path: parameters passed as solve ``constants``.
        solver = tfp.math.ode.DormandPrince(atol=ATOL)
        blocks = []
        for params in params_list:
            current = {}

            def solve(ode_fn, initial_time, initial_state, solution_times, params=params,
                      current=current):
                def with_constants(t, z, **constants):
                    current["params"] = constants["params"]
                    return ode_fn(t, z)

                return solver.solve(with_constants, initial_time, initial_state,
                                    solution_times=solution_times, constants={"params": params})

            blocks.append(tfb.FFJORD(
                state_time_derivative_fn=lambda t, z, c=current: FIELD.apply(c["params"], t, z),
                ode_solve_fn=solve, trace_augmentation_fn=tfb.ffjord.trace_jacobian_exact))
        chain = tfb.Chain(blocks[::-1])
        return -jnp.mean(tfd.TransformedDistribution(base, chain).log_prob(data))

    outcomes = {}
    for name, loss in (("closure", closure_loss), ("solver_constants", constants_loss)):
        for mode, fn in (("eager", jax.grad(loss)), ("jit", jax.jit(jax.grad(loss)))):
            try:
                jax.block_until_ready(fn(params_list))
                outcomes[f"{name}/{mode}"] = "ok"
            except Exception as err:  # noqa: BLE001 -- recording whatever TFP raises
                outcomes[f"{name}/{mode}"] = f"{type(err).__name__}: {str(err).splitlines()[0]}"
    return outcomes


# --------------------------------------------------------------------------------------
# Timing.
# --------------------------------------------------------------------------------------


def adam_step(loss_fn, optimizer):
    @jax.jit
    def step(params, opt_state, batch, key):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def pretrain(flow, params, state, data, steps, seed):
    optimizer = optax.adam(1e-2)

    def loss_fn(p, batch, key):
        return -jnp.mean(flow.log_prob_and_state(p, state, batch, key=key)[0])

    step = adam_step(loss_fn, optimizer)
    opt_state = optimizer.init(params)
    rng = np.random.default_rng(seed)
    loss = jnp.nan
    for i in range(steps):
        batch = data[rng.choice(len(data), BATCH, replace=False)]
        params, opt_state, loss = step(params, opt_state, batch, jax.random.key(i))
    return params, float(loss)


def one_solve(blocks, points, tolerances, repeats, with_fast=False) -> dict:
    """Each block's single solve (base -> data with log-det) on the same points.

    Returns seconds per solve (the 4 blocks' solves timed together, divided by 4), NFE
    per solve (mean over blocks) and the largest differences from jflows' results.
    """
    jflows_block = ffjord(FIELD, max_steps=MAX_STEPS, stepsize_controller=controller(*tolerances))
    fast_block = ffjord(FIELD, max_steps=MAX_STEPS, solver=diffrax.Tsit5(),
                        stepsize_controller=controller(1e-3, 1e-3))
    tfp_list = tfp_blocks(blocks, tolerances)
    implementations = {
        "jflows": jax.jit(lambda ps, x: [jflows_block.forward_with_info(p, (), x) for p in ps]),
        "diffrax_direct": jax.jit(lambda ps, x: [direct_forward([p], x, tolerances) for p in ps]),
        "tfp": jax.jit(lambda ps, x: [b._augmented_forward(x) for b in tfp_list]),  # one solve
    }
    if with_fast:
        implementations["jflows_fast"] = jax.jit(
            lambda ps, x: [fast_block.forward_with_info(p, (), x) for p in ps])
    seconds = interleaved_timings(
        {name: (lambda fn=fn: fn(blocks, points)) for name, fn in implementations.items()},
        repeats)
    outputs = {name: fn(blocks, points) for name, fn in implementations.items()}
    per_step, once = evaluations_per_step(diffrax.Dopri5())
    direct_nfe = np.stack([per_step * np.asarray(steps[:, 0]) + once
                           for _, _, steps in outputs["diffrax_direct"]])
    nfe = {
        "jflows": float(np.mean([int(info.nfe) for *_, info in outputs["jflows"]])),
        "diffrax_direct_mean": float(direct_nfe.mean()),
        "diffrax_direct_max": float(direct_nfe.max(axis=1).mean()),
        "tfp": float(np.mean([int(jax.jit(tfp_nfe, static_argnums=2)(p, points, tolerances))
                              for p in blocks])),
    }
    if with_fast:
        nfe["jflows_fast"] = float(np.mean([int(i.nfe) for *_, i in outputs["jflows_fast"]]))

    reference = float64_reference(blocks, points)
    value_and_log_det = {
        "jflows": lambda o: o[:2],
        "diffrax_direct": lambda o: o[:2],
        "tfp": lambda o: (o[0], o[1]["fldj"].sum(-1)),
    }

    def largest_error(name):
        pairs = [(value_and_log_det[name](out), ref)
                 for out, ref in zip(outputs[name], reference, strict=True)]
        return [max(float(np.max(np.abs(np.asarray(ours[k], np.float64) - ref[k])))
                    for ours, ref in pairs) for k in (0, 1)]

    return {
        "tolerances": list(tolerances),
        "seconds": {stat: {name: value / len(blocks) for name, value in values.items()}
                    for stat, values in seconds.items()},
        "nfe": nfe,
        "max_abs_error": {name: largest_error(name) for name in value_and_log_det},
    }


def float64_reference(blocks, points):
    """Each block's ``(y, log_det)`` from a float64 jflows solve at rtol = atol = 1e-11."""
    with jax.enable_x64(True):
        block = ffjord(FIELD, max_steps=100_000, stepsize_controller=controller(1e-11, 1e-11))
        to64 = lambda tree: jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)  # noqa: E731
        solve = jax.jit(lambda p, x: block.forward(p, (), x)[:2])
        return [tuple(np.asarray(a) for a in solve(to64(p), to64(points))) for p in blocks]


def run(repeats: int, pretrain_steps: int, seed: int) -> dict:
    data = jnp.asarray(jdata.sample_toy("moons", 8192, seed=seed))
    flow = jflows_flow(**PAPER)
    params, state = flow.init(jax.random.key(seed))
    params, pretrain_loss = pretrain(flow, params, state, data, pretrain_steps, seed)
    blocks = list(params["bijector"])
    batch = data[:BATCH]
    base_points = BASE_SCALE * jax.random.normal(jax.random.key(seed + 1), (BATCH, 2))
    results = {"pretrain_steps": pretrain_steps, "pretrain_nll": pretrain_loss}

    results["solve"] = one_solve(blocks, base_points, (RTOL, ATOL), repeats, with_fast=True)
    results["solve_paper_tolerances"] = one_solve(blocks, base_points, PAPER_TOLERANCES, repeats)

    # The 4-block stack, base -> data with log-det.
    tfp_stack = tfp_chain(blocks)
    jflows_stack = jax.jit(lambda p, x: flow.bijector.forward_with_info(p, state["bijector"], x))
    direct_stack = jax.jit(lambda p, x: direct_forward(p, x))
    tfp_stack_fn = jax.jit(
        lambda x: (tfp_stack.forward(x), tfp_stack.forward_log_det_jacobian(x, event_ndims=1))
    )
    results["stack"] = {"seconds": interleaved_timings({
        "jflows": lambda: jflows_stack(params["bijector"], base_points),
        "diffrax_direct": lambda: direct_stack(blocks, base_points),
        "tfp": lambda: tfp_stack_fn(base_points),
    }, repeats)}
    stack_stats = solve_metrics(jflows_stack(params["bijector"], base_points)[3])
    results["stack"]["jflows_nfe_per_solve"] = float(stack_stats["nfe_per_solve"])

    # A training step: -mean log p(batch), its gradient, Adam.
    optimizer = optax.adam(1e-2)

    def jflows_loss(p, b, key):
        return -jnp.mean(flow.log_prob_and_state(p, state, b, key=key)[0])

    fast_flow = jflows_flow(solver=diffrax.Tsit5(), stepsize_controller=controller(1e-3, 1e-3))
    hutchinson_flow = jflows_flow(trace=hutchinson_trace("rademacher"), **PAPER)

    def fast_loss(p, b, key):
        return -jnp.mean(fast_flow.log_prob_and_state(p, state, b, key=key)[0])

    def hutchinson_loss(p, b, key):
        return -jnp.mean(hutchinson_flow.log_prob_and_state(p, state, b, key=key)[0])

    def direct_loss(p, b, key):
        del key
        return -jnp.mean(direct_log_prob(p, b))

    steps = {
        "jflows": (adam_step(jflows_loss, optimizer), params),
        "jflows_fast": (adam_step(fast_loss, optimizer), params),
        "jflows_hutchinson": (adam_step(hutchinson_loss, optimizer), params),
        "diffrax_direct": (adam_step(direct_loss, optimizer), blocks),
    }
    states = {name: optimizer.init(p) for name, (_, p) in steps.items()}
    key = jax.random.key(seed)
    results["train_step"] = {"seconds": interleaved_timings({
        name: (lambda s=s, p=p, o=states[name]: s(p, o, batch, key)[2])
        for name, (s, p) in steps.items()
    }, repeats)}
    results["train_step"]["loss"] = {
        name: float(s(p, states[name], batch, key)[2]) for name, (s, p) in steps.items()
    }
    results["train_step"]["tfp"] = tfp_training_attempts(blocks, batch)

    # The gradient of the training loss under each diffrax adjoint (plain jit).
    adjoints = {"recursive_checkpoint": diffrax.RecursiveCheckpointAdjoint(),
                "backsolve": diffrax.BacksolveAdjoint(), "direct": diffrax.DirectAdjoint()}
    gradients = {}
    for name, adjoint in adjoints.items():
        adjoint_flow = jflows_flow(adjoint=adjoint, **PAPER)
        gradients[name] = jax.jit(jax.value_and_grad(
            lambda p, f=adjoint_flow: -jnp.mean(f.log_prob_and_state(p, state, batch)[0])))
    results["adjoint_gradient"] = {"seconds": interleaved_timings(
        {name: (lambda g=g: g(params)) for name, g in gradients.items()}, repeats)}
    return results


def report(results: dict) -> str:
    solve, paper = results["solve"], results["solve_paper_tolerances"]
    stack, train = results["stack"], results["train_step"]
    ms = lambda s: f"{1e3 * s:.2f}"  # noqa: E731

    def row(what, seconds, tfp_cell=None):
        """Cells ``median (best)`` in ms, ratios ``median-ratio (best-ratio)``."""
        med, best = seconds["median"], seconds["best"]

        def cell(name):
            return f"{ms(med[name])} ({ms(best[name])})"

        def ratio(name):
            return f"{med[name] / med['jflows']:.2f}x ({best[name] / best['jflows']:.2f}x)"

        has_tfp = "tfp" in med
        cells = [cell("jflows"), cell("diffrax_direct"), cell("tfp") if has_tfp else tfp_cell,
                 ratio("diffrax_direct"), ratio("tfp") if has_tfp else "-"]
        return f"| {what} | {' | '.join(cells)} |"

    def nfe_row(what, nfe):
        return (f"| {what} | {nfe['jflows']:.1f} | {nfe['diffrax_direct_mean']:.1f} mean, "
                f"{nfe['diffrax_direct_max']:.1f} max over points | {nfe['tfp']:.1f} | | |")

    lines = [
        f"machine: {results['machine']}",
        f"parameters after {results['pretrain_steps']} jflows Adam steps on moons "
        f"(training NLL {results['pretrain_nll']:.3f})",
        "",
        "| per call (256 points) | jflows, ms | diffrax direct, ms | TFP-JAX, ms "
        "| direct / jflows | TFP / jflows |",
        "|---|---|---|---|---|---|",
        row("one solve with log-det (tutorial tol.)", solve["seconds"]),
        nfe_row("NFE per solve (tutorial tol.)", solve["nfe"]),
        row("one solve with log-det (paper tol. 1e-5)", paper["seconds"]),
        nfe_row("NFE per solve (paper tol.)", paper["nfe"]),
        row("4-block forward with log-det (TFP: public forward + forward_log_det_jacobian)",
            stack["seconds"]),
        row("training step (-mean log p, grad, Adam)", train["seconds"],
            "cannot be differentiated"),
        "",
        "Times: median (best) over interleaved repeats.",
        f"jflows fast option (Tsit5, rtol = atol = 1e-3): one solve "
        f"{ms(solve['seconds']['median']['jflows_fast'])} ms, "
        f"{solve['nfe']['jflows_fast']:.1f} NFE; training step "
        f"{ms(train['seconds']['median']['jflows_fast'])} ms. Hutchinson (Rademacher) training "
        f"step, tutorial solver: {ms(train['seconds']['median']['jflows_hutchinson'])} ms. "
        f"4-block stack: {stack['jflows_nfe_per_solve']:.1f} NFE per solve.",
        "max |error| of one solve vs a float64 solve at 1e-11 (value, log-det), tutorial / "
        "paper tolerances: " + "; ".join(
            f"{k}: {v[0]:.1e}, {v[1]:.1e} / {paper['max_abs_error'][k][0]:.1e}, "
            f"{paper['max_abs_error'][k][1]:.1e}" for k, v in solve["max_abs_error"].items()),
        "jflows gradient of the training loss per adjoint, ms, median (best): " + ", ".join(
            f"{name} {ms(seconds)} ({ms(results['adjoint_gradient']['seconds']['best'][name])})"
            for name, seconds in results["adjoint_gradient"]["seconds"]["median"].items()),
        "TFP-JAX gradient attempts: " + "; ".join(
            f"{k}: {v}" for k, v in train["tfp"].items()),
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="3 repeats, 5 pretraining steps")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.pretrain_steps = 3, 5
    results = run(args.repeats, args.pretrain_steps, args.seed)
    results["machine"] = f"{machine_description()}, load average {os.getloadavg()[0]:.1f}"
    print(report(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
