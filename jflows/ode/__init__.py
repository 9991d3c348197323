"""Continuous normalizing flows on diffrax: FFJORD, trace estimators, RNODE regularisation,
and conditional flow matching (:mod:`jflows.ode.flow_matching`: simulation-free training of
the same vector field, exact likelihood after).

See :func:`ffjord` for the bijector, :mod:`jflows.ode.trace` for the estimators,
:mod:`jflows.ode.regularization` for RNODE and :mod:`jflows.ode.info` for the per-solve
record (steps, function evaluations, RNODE integrals, why a solve failed) that an FFJORD
block reports in the bijector contract's info channel (its state is empty).
Vector fields live in :mod:`jflows.nets.odenet`.
"""

from jflows.ode.ffjord import ffjord
from jflows.ode.flow_matching import (
    cfm_flow,
    cfm_loss,
    conditional_path,
    ot_assignment,
    ot_pairs,
)
from jflows.ode.info import (
    SolveInfo,
    describe_result,
    evaluations_per_step,
    explain_failures,
    find_solve_info,
    function_evaluations,
    result_code,
    solve_metrics,
)
from jflows.ode.regularization import RNODE, regularization_penalty, rnode
from jflows.ode.trace import TraceEstimator, exact_trace, hutchinson_trace

__all__ = [
    "RNODE",
    "SolveInfo",
    "TraceEstimator",
    "cfm_flow",
    "cfm_loss",
    "conditional_path",
    "describe_result",
    "evaluations_per_step",
    "exact_trace",
    "explain_failures",
    "ffjord",
    "find_solve_info",
    "function_evaluations",
    "hutchinson_trace",
    "ot_assignment",
    "ot_pairs",
    "regularization_penalty",
    "result_code",
    "rnode",
    "solve_metrics",
]
