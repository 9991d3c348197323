"""RNODE regularisation: "How to train your neural ODE" (Finlay et al., ICML 2020).

Two integrals are solved alongside the state and the log-det (eq. 4-5 of the paper)::

    kinetic energy      K = int_{t0}^{t1} ||f(t, z(t))||^2 dt
    Jacobian Frobenius  B = int_{t0}^{t1} ||df/dz (t, z(t))||_F^2 dt

``K`` favours straight trajectories travelled at constant speed (optimal transport),
``B`` keeps the dynamics smooth; together they let the adaptive solver take far fewer
steps for the same likelihood. ``B`` uses the trace estimator's products: exact with
:func:`jflows.ode.exact_trace`, the unbiased ``||J eps||^2`` with Hutchinson noise.
The training loss adds ``kinetic_weight * mean(K) + jacobian_weight * mean(B)`` (batch
means), which an FFJORD block reports as ``SolveInfo.penalty`` in its info (the
``*_with_info`` functions, ``transformed(...).log_prob_and_state``'s third output);
:func:`regularization_penalty` sums it over every block of a flow.

Both norms are sums over the event's entries (not means), so the penalty grows with the
event size; scale the weights accordingly.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jflows.ode.info import find_solve_info

Array = jax.Array


class RNODE(NamedTuple):
    """Weights of the kinetic-energy and Jacobian-Frobenius penalties (0 = off)."""

    kinetic_weight: float = 0.0
    jacobian_weight: float = 0.0

    @property
    def active(self) -> bool:
        return self.kinetic_weight > 0 or self.jacobian_weight > 0


def rnode(kinetic_weight: float = 0.01, jacobian_weight: float = 0.01) -> RNODE:
    """RNODE weights ``lambda_K``, ``lambda_J`` (default 0.01 each, the paper's image setting)."""
    for name, value in (("kinetic_weight", kinetic_weight), ("jacobian_weight", jacobian_weight)):
        if not value >= 0:
            raise ValueError(f"rnode: {name} must be >= 0, got {value}.")
    return RNODE(float(kinetic_weight), float(jacobian_weight))


def regularization_penalty(info) -> Array:
    """Sum of the RNODE penalties of every FFJORD solve recorded in a (nested) info.

    Use it in the loss::

        log_prob, new_state, info = flow.log_prob_and_state(params, state, x, key=key)
        loss = -mean(log_prob) + regularization_penalty(info)

    Zero when no block is regularised or the pass ran with ``train=False``.
    """
    records = find_solve_info(info)
    return sum((jnp.sum(record.penalty) for record in records), jnp.zeros(()))
