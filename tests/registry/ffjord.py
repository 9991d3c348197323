"""Registry case for FFJORD blocks (jflows.ode).

One case keeps the default suite fast (every check compiles its own diffrax solves): a
conditional block that trains with Hutchinson's estimator (``train=True`` calls, which
need the key) and evaluates with the exact trace (``train=False``, what the log-det
checks see). The other configurations -- Hutchinson log-dets, concat-squash nets, the
adaptive default solver, stacks with batch norm, ``scan`` -- run every check in
``tests/ode/test_ffjord_shared_checks.py`` (marked slow). Cases integrate on a fixed grid
(Tsit5, 10 steps) so that a batched solve and single-event solves under ``vmap`` take
the same steps.
"""

import diffrax

from jflows.nets.odenet import ConcatTimeMLP
from jflows.ode import exact_trace, ffjord, hutchinson_trace
from jflows.testing import BijectorCase

MISMATCHED = [((4, 5), "last axis 5 where init saw 3")]
FIXED_GRID = dict(solver=diffrax.Tsit5(), stepsize_controller=diffrax.ConstantStepSize(), dt0=0.1)

CASES = [
    BijectorCase("ffjord_conditional_hutchinson_train_exact_eval",
                 lambda: ffjord(ConcatTimeMLP(hidden=(8, 8)), cond_shape=(2,),
                                trace=hutchinson_trace(), eval_trace=exact_trace(), **FIXED_GRID),
                 (3,), cond_shape=(2,), needs_key=True, bad_inputs=MISMATCHED),
]
