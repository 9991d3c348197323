"""Continuous normalizing flows on diffrax: FFJORD, trace estimators, RNODE regularisation.

See :func:`ffjord` for the bijector, :mod:`jflows.ode.trace` for the estimators,
:mod:`jflows.ode.regularization` for RNODE and :mod:`jflows.ode.stats` for the per-solve
record (steps, function evaluations) that an FFJORD block returns as its state.
Vector fields live in :mod:`jflows.nets.odenet`.
"""

from jflows.ode.ffjord import ffjord
from jflows.ode.regularization import RNODE, regularization_penalty, rnode
from jflows.ode.stats import (
    SolveStats,
    evaluations_per_step,
    find_solve_stats,
    function_evaluations,
    solve_metrics,
)
from jflows.ode.trace import TraceEstimator, exact_trace, hutchinson_trace

__all__ = [
    "RNODE",
    "SolveStats",
    "TraceEstimator",
    "evaluations_per_step",
    "exact_trace",
    "ffjord",
    "find_solve_stats",
    "function_evaluations",
    "hutchinson_trace",
    "regularization_penalty",
    "rnode",
    "solve_metrics",
]
