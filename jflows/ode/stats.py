"""What one FFJORD solve reports: steps, function evaluations and RNODE integrals.

An :func:`jflows.ode.ffjord` bijector returns a :class:`SolveStats` as its ``state``.
The state of the bijector contract is the place for non-trained outputs (batch norm keeps
its running statistics there), so the record travels through ``chain``, ``scan`` and
``transformed(...).log_prob`` without changing the ``(y, log_det, state)`` signature. It
is *output only*: the state passed in is ignored, the returned one describes the solve
just made. Read it with :func:`solve_metrics` (for a metrics dict) and
:func:`jflows.ode.regularization_penalty` (for the loss).
"""

from __future__ import annotations

from typing import NamedTuple

import diffrax
import jax
import jax.numpy as jnp

Array = jax.Array


class SolveStats(NamedTuple):
    """Record of the last solve of one FFJORD block (scalars; stacked under ``scan``).

    Attributes:
      num_steps: solver steps taken, accepted and rejected.
      nfe: evaluations of the vector field (with its trace) in the solve, ``-1`` when the
        solver's evaluation count is not known (see :func:`function_evaluations`).
      kinetic_energy: batch mean of ``int ||f(t, z(t))||^2 dt`` (0 unless RNODE is on and
        ``train=True``).
      jacobian_frobenius: batch mean of ``int ||df/dz||_F^2 dt`` (same conditions).
      penalty: ``kinetic_weight * kinetic_energy + jacobian_weight * jacobian_frobenius``,
        differentiable w.r.t. the params; add it to the training loss.
    """

    num_steps: Array
    nfe: Array
    kinetic_energy: Array
    jacobian_frobenius: Array
    penalty: Array

    @classmethod
    def zeros(cls, dtype) -> SolveStats:
        int_zero = jnp.zeros((), jnp.int32)
        float_zero = jnp.zeros((), dtype)
        return cls(int_zero, int_zero, float_zero, float_zero, float_zero)


def evaluations_per_step(solver: diffrax.AbstractSolver) -> tuple[int, int] | None:
    """``(per_step, once)`` with ``nfe = per_step * num_steps + once`` for ``solver``.

    Explicit Runge-Kutta methods evaluate every stage of each step (accepted or
    rejected); a first-same-as-last (FSAL) tableau reuses the last stage as the next
    step's first, so it costs ``stages - 1`` per step plus one evaluation at the start.
    diffrax wraps the ODE term before choosing an initial step when ``dt0=None``, and
    that choice costs no evaluation in diffrax 0.7 (``tests/ode`` checks this count
    against a counter inside the vector field). ``None`` for other solvers (implicit,
    multistep): their count is not determined by the number of steps.
    """
    if isinstance(solver, diffrax.Euler):
        return 1, 0
    if isinstance(solver, diffrax.AbstractERK):
        tableau = solver.tableau
        if isinstance(tableau, diffrax.ButcherTableau):
            stages = tableau.num_stages
            return (stages - 1, 1) if tableau.fsal else (stages, 0)
    return None


def function_evaluations(solver: diffrax.AbstractSolver, num_steps: Array) -> Array:
    """Number of vector-field evaluations of a solve of ``num_steps`` steps (``-1``: unknown)."""
    counts = evaluations_per_step(solver)
    if counts is None:
        return jnp.full_like(num_steps, -1)
    per_step, once = counts
    return per_step * num_steps + once


def find_solve_stats(state) -> list[SolveStats]:
    """Every :class:`SolveStats` record in a nested state pytree (e.g. a ``chain``'s)."""
    leaves = jax.tree_util.tree_leaves(state, is_leaf=lambda s: isinstance(s, SolveStats))
    return [leaf for leaf in leaves if isinstance(leaf, SolveStats)]


def solve_metrics(state) -> dict[str, Array]:
    """Totals over every FFJORD solve recorded in a (nested) state, for a metrics dict.

    Returns scalar arrays: ``num_solves`` (FFJORD blocks, each layer of a ``scan``
    counted), ``nfe`` (total evaluations of the pass; ``-1`` if any solver's count is
    unknown), ``nfe_per_solve`` (its mean over blocks), and the sums over blocks of
    ``num_steps``, ``kinetic_energy``, ``jacobian_frobenius`` and ``penalty``. An empty
    dict when the state holds no FFJORD record.
    """
    records = find_solve_stats(state)
    if not records:
        return {}

    def flat(field):
        return jnp.concatenate([jnp.ravel(getattr(record, field)) for record in records])

    nfe_each = flat("nfe")
    nfe = jnp.where(jnp.any(nfe_each < 0), -1, jnp.sum(nfe_each))
    return {
        "num_solves": jnp.asarray(nfe_each.size),
        "nfe": nfe,
        "nfe_per_solve": jnp.where(nfe < 0, -1.0, nfe / nfe_each.size),
        "num_steps": jnp.sum(flat("num_steps")),
        "kinetic_energy": jnp.sum(flat("kinetic_energy")),
        "jacobian_frobenius": jnp.sum(flat("jacobian_frobenius")),
        "penalty": jnp.sum(flat("penalty")),
    }
