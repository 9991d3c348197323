"""Registry case for the FFJORD flow of a flow-matching field (jflows.ode.flow_matching).

``cfm_flow(field, source)`` is ``transformed(source, ffjord(field, t0=0, t1=1))``; the
case checks its bijector, a conditional concat-squash field on a fixed grid (Tsit5, 10
steps) as in ``tests/registry/ffjord.py``, so that a batched solve and single-event solves
under ``vmap`` take the same steps.
"""

from jflows.distributions import standard_normal
from jflows.nets.odenet import ConcatSquashMLP
from jflows.ode.flow_matching import cfm_flow
from jflows.testing import BijectorCase
from tests.registry.ffjord import FIXED_GRID, MISMATCHED


def conditional_cfm_block():
    return cfm_flow(ConcatSquashMLP(hidden=(8,)), standard_normal((3,)), cond_shape=(2,),
                    **FIXED_GRID).bijector


CASES = [
    BijectorCase("cfm_flow_conditional_concat_squash", conditional_cfm_block, (3,),
                 cond_shape=(2,), bad_inputs=MISMATCHED),
]
