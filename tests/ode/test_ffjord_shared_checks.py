"""The shared bijector checks on more FFJORD configurations (slow: each compiles solves).

The default suite runs the registry's FFJORD case (``tests/registry/ffjord.py``).
"""

import pytest

import jflows.bijectors as jb
from jflows.nets.odenet import ConcatSquashMLP, ConcatTimeMLP
from jflows.ode import exact_trace, ffjord, hutchinson_trace, rnode
from jflows.testing import CHECKS, BijectorCase
from tests.registry.ffjord import FIXED_GRID, MISMATCHED

# A Hutchinson log-det is an estimate: it is not compared with the dense Jacobian, nor
# (in ``transformed``) one estimate from sampling with another from log_prob.
STOCHASTIC_CHECKS = tuple(name for name in CHECKS if name != "log_det_vs_jacobian")
# An adaptive solve of a batch chooses its steps for the whole batch, so single events
# under vmap (each with its own steps) agree only to the solver's tolerance, not to 1e-5.
ADAPTIVE_CHECKS = tuple(name for name in CHECKS if name != "batch_matches_vmap")


def mlp():
    return ConcatTimeMLP(hidden=(8, 8))


CASES = [
    BijectorCase("ffjord_exact_fixed_grid", lambda: ffjord(mlp(), **FIXED_GRID), (3,),
                 bad_inputs=MISMATCHED),
    BijectorCase("ffjord_default_adaptive", lambda: ffjord(mlp()), (2,),
                 rtol=1e-4, atol=1e-4, jacobian_atol=1e-4, checks=ADAPTIVE_CHECKS),
    BijectorCase("ffjord_hutchinson_rademacher",
                 lambda: ffjord(mlp(), trace=hutchinson_trace("rademacher"), **FIXED_GRID),
                 (3,), needs_key=True, stochastic_log_det=True, checks=STOCHASTIC_CHECKS),
    BijectorCase("ffjord_rnode_exact_eval",
                 lambda: ffjord(mlp(), trace=hutchinson_trace(), eval_trace=exact_trace(),
                                regularization=rnode(0.1, 0.1), **FIXED_GRID),
                 (3,), needs_key=True),
    BijectorCase("ffjord_conditional_concat_squash",
                 lambda: ffjord(ConcatSquashMLP(hidden=(8,)), cond_shape=(2,), **FIXED_GRID),
                 (3,), cond_shape=(2,), bad_inputs=MISMATCHED),
    BijectorCase("ffjord_chain_batch_norm",
                 lambda: jb.chain(ffjord(mlp(), **FIXED_GRID), jb.batch_norm(),
                                  ffjord(mlp(), **FIXED_GRID)),
                 (2,), trainable_state=True),
    BijectorCase("ffjord_scan", lambda: jb.scan(ffjord(mlp(), **FIXED_GRID), 2), (2,)),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "check"),
    [pytest.param(case, check, id=f"{case.name}-{check}")
     for case in CASES for check in CHECKS if case.checks is None or check in case.checks],
)
def test_shared_check(case, check):
    CHECKS[check](case)
