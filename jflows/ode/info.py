"""What one FFJORD solve reports: steps, evaluations, RNODE integrals and why it failed.

An :func:`jflows.ode.ffjord` bijector has no state (``()``). Its diagnostics travel in the
bijector contract's *info* channel (:mod:`jflows.bijectors.base`): ``forward_with_info`` /
``inverse_with_info`` return ``(y, log_det, (), info)`` with ``info`` a :class:`SolveInfo`.
The combinators thread it (a ``chain``'s tuple or dict per part, a ``scan``'s records
stacked per layer, ``invert`` swapping the directions) and
``transformed(...).log_prob_and_state`` returns it as ``info['bijector']``.

The functions here read every :class:`SolveInfo` in such a nested info pytree:

* :func:`solve_metrics` -- totals for a metrics dict (under ``jit``);
* :func:`jflows.ode.regularization_penalty` -- the RNODE term of the loss (under ``jit``);
* :func:`explain_failures` -- one sentence per failed solve (eager, on concrete info).

**Failed solves.** A solve fails when diffrax reports a result other than ``successful``
(e.g. ``max_steps`` reached) or when non-finite values enter or leave it. Its values and
log-dets are then NaN (so :func:`jflows.train.fit`'s non-finite guard skips the training
step), and ``SolveInfo.result`` keeps the reason as a code of ``diffrax.RESULTS``:

* ``nonfinite_input``: NaN or inf in the data, ``cond`` or params given to the solve (found
  before solving; an adaptive solver would otherwise report ``max_steps_reached``, having
  rejected every step);
* diffrax's own code when it stopped the solve (``max_steps_reached``, ``dt_min_reached``...);
* ``nonfinite``: diffrax finished but the solution holds NaN or inf (a fixed-step solve
  does not check its values; a vector field that blows up).
"""

from __future__ import annotations

from typing import NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def result_code(item) -> int:
    """The int code of a ``diffrax.RESULTS`` item (``diffrax.RESULTS.max_steps_reached``).

    equinox stores an enumeration item's code as ``item._value``; it is the integer that
    ``SolveInfo.result`` holds.
    """
    return int(item._value)


SUCCESSFUL = result_code(diffrax.RESULTS.successful)
NONFINITE_INPUT = result_code(diffrax.RESULTS.nonfinite_input)
NONFINITE = result_code(diffrax.RESULTS.nonfinite)

# Short reasons for the failures an FFJORD solve meets; other codes use diffrax's message.
_REASONS = {
    "max_steps_reached": "max_steps reached: the adaptive solver needed more steps than "
                         "max_steps (raise ffjord(..., max_steps=...), loosen rtol/atol, or "
                         "regularise the dynamics with RNODE)",
    "nonfinite_input": "non-finite input: NaN or inf in the data, cond or params given to "
                       "the solve",
    "nonfinite": "non-finite values: the solution holds NaN or inf (the vector field blew up "
                 "during the solve)",
    "dt_min_reached": "minimum step size reached: the step-size controller's dtmin was hit",
}


class SolveInfo(NamedTuple):
    """Record of one FFJORD solve (scalars; stacked under ``scan``, batched under ``vmap``).

    Attributes:
      num_steps: solver steps taken, accepted and rejected (int32).
      nfe: evaluations of the vector field (with its trace) in the solve, ``-1`` when the
        solver's evaluation count is not known (see :func:`function_evaluations`) (int32).
      result: ``diffrax.RESULTS`` code of the solve, ``0`` (``successful``) or why it
        failed (int32; see the module docstring and :func:`describe_result`).
      kinetic_energy: batch mean of ``int ||f(t, z(t))||^2 dt`` (0 unless RNODE is on and
        ``train=True``).
      jacobian_frobenius: batch mean of ``int ||df/dz||_F^2 dt`` (same conditions).
      penalty: ``kinetic_weight * kinetic_energy + jacobian_weight * jacobian_frobenius``,
        differentiable w.r.t. the params; add it to the training loss.
    """

    num_steps: Array
    nfe: Array
    result: Array
    kinetic_energy: Array
    jacobian_frobenius: Array
    penalty: Array


def _result_names() -> dict[int, str]:
    """``code -> name`` of every ``diffrax.RESULTS`` item (equinox's ``_name_to_item``)."""
    return {result_code(item): name for name, item in diffrax.RESULTS._name_to_item.items()}


def describe_result(code) -> str:
    """A sentence for one ``diffrax.RESULTS`` code (eager: ``code`` must be concrete)."""
    code = int(code)
    names = _result_names()
    if code not in names:
        return f"unknown diffrax result code {code}"
    name = names[code]
    if name == "successful":
        return "successful"
    if name in _REASONS:
        return _REASONS[name]
    message = diffrax.RESULTS[getattr(diffrax.RESULTS, name)].splitlines()[0]
    return f"{name.replace('_', ' ')}: {message}"


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


def _is_record(node) -> bool:
    return isinstance(node, SolveInfo)


def find_solve_info(info) -> list[SolveInfo]:
    """Every :class:`SolveInfo` in a nested info pytree (a chain's, a transformed model's)."""
    leaves = jax.tree_util.tree_leaves(info, is_leaf=_is_record)
    return [leaf for leaf in leaves if _is_record(leaf)]


def solve_metrics(info) -> dict[str, Array]:
    """Totals over every FFJORD solve recorded in a (nested) info, for a metrics dict.

    Returns scalar arrays: ``num_solves`` (FFJORD blocks, each layer of a ``scan``
    counted), ``nfe`` (total evaluations of the pass; ``-1`` if any solver's count is
    unknown), ``nfe_per_solve`` (its mean over blocks), the sums over blocks of
    ``num_steps``, ``kinetic_energy``, ``jacobian_frobenius`` and ``penalty``,
    ``failed_solves`` (how many solves failed) and ``failure_code`` (the
    ``diffrax.RESULTS`` code of the first failed solve in the pytree's order, ``0`` when
    none failed; :func:`describe_result` turns it into words). An empty dict when the
    info holds no FFJORD record.
    """
    records = find_solve_info(info)
    if not records:
        return {}

    def flat(field):
        return jnp.concatenate([jnp.ravel(getattr(record, field)) for record in records])

    nfe_each = flat("nfe")
    nfe = jnp.where(jnp.any(nfe_each < 0), -1, jnp.sum(nfe_each))
    results = flat("result")
    failed = results != SUCCESSFUL
    return {
        "num_solves": jnp.asarray(nfe_each.size),
        "nfe": nfe,
        "nfe_per_solve": jnp.where(nfe < 0, -1.0, nfe / nfe_each.size),
        "num_steps": jnp.sum(flat("num_steps")),
        "kinetic_energy": jnp.sum(flat("kinetic_energy")),
        "jacobian_frobenius": jnp.sum(flat("jacobian_frobenius")),
        "penalty": jnp.sum(flat("penalty")),
        "failed_solves": jnp.sum(failed.astype(jnp.int32)),
        "failure_code": results[jnp.argmax(failed)],
    }


def explain_failures(info) -> list[str]:
    """One message per failed solve in a (nested) info, ``[]`` when all succeeded.

    Each message names where the record sits in the pytree (e.g. ``['bijector'][2]``, a
    ``scan``'s layer as a trailing index) and :func:`describe_result` of its code. Eager:
    call it on the info a (jitted) function returned, not inside ``jit``.
    """
    messages = []
    for path, record in jax.tree_util.tree_flatten_with_path(info, is_leaf=_is_record)[0]:
        if not _is_record(record):
            continue
        if isinstance(record.result, jax.core.Tracer):
            raise TypeError("explain_failures reads concrete result codes: call it on the info "
                            "a jitted function returned, outside jit (use solve_metrics(info) "
                            "inside).")
        codes = np.asarray(record.result)
        where = jax.tree_util.keystr(path) or "solve"
        for index in np.ndindex(codes.shape):
            if codes[index] != SUCCESSFUL:
                at = f"{where}[{', '.join(map(str, index))}]" if index else where
                messages.append(f"{at}: {describe_result(codes[index])}")
    return messages
