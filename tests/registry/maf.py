"""Registry cases for MADE-based bijectors: MAF / IAF layers and the MAF stack.

Every case's MADEs use the default, degree-blocked evaluation; ``DENSE_TWINS[name]`` builds
the same bijector (same params layout) with ``evaluation="dense"`` MADEs, the reference of
tests/nets/test_made_blocked.py.
"""

import functools
import importlib
from unittest import mock

import numpy as np

import jflows.bijectors as jb
from jflows.flows import maf_bijector
from jflows.nets import MADE
from jflows.testing import BijectorCase

# The module itself (the attribute ``jflows.flows.maf`` is the function of that name).
MAF_MODULE = importlib.import_module("jflows.flows.maf")

D = 5
MISMATCHED = [((4, 4), "last axis 4 where the MADE has event_size 5")]


# These layers are too narrow for the measured choice of groups (one block each), so the
# blocked cases cut every layer into 3 groups.
GROUPS = 3


def made(*args, evaluation="blocked", **kwargs):
    """A MADE evaluated blocked (in ``GROUPS`` groups) or dense."""
    groups = GROUPS if evaluation == "blocked" else None
    return MADE(*args, evaluation=evaluation, blocked_groups=groups, **kwargs)


def made_affine(evaluation="blocked", **made_kwargs):
    bound = made_kwargs.pop("log_scale_bound", None)
    transformer = made_kwargs.pop("transformer", None)
    made_kwargs.setdefault("hidden_sizes", (8, 8))
    return jb.masked_autoregressive(made(D, evaluation=evaluation, **made_kwargs),
                                    log_scale_bound=bound, transformer=transformer)


def maf_stack(evaluation="blocked"):
    """``maf_bijector`` with its MADEs built by ``made``: its own ``evaluation`` option
    would use the measured group count, one block at this width, so blocked == dense."""
    with mock.patch.object(MAF_MODULE, "MADE",
                           functools.partial(made, evaluation=evaluation)):
        return maf_bijector(D, 2, (8,), cond_shape=(2,))


# Each builder takes the MADEs' evaluation ("blocked", the default, or "dense").
BUILDERS = {
    "maf_random_order_random_degrees":
        functools.partial(made_affine, hidden_degrees="random", input_order="random", seed=1),
    # FlowJAX's MAF layer: ReLU and the softplus-scaled affine transformer.
    "maf_explicit_order_relu_softplus":
        functools.partial(made_affine, input_order=(2, 0, 4, 1, 3), hidden_sizes=(7, 6),
                          activation="relu", output_init_scale=1.0,
                          transformer=jb.softplus_affine_transformer(0.1)),
    "maf_conditional_bounded":
        functools.partial(made_affine, cond_shape=(3,), log_scale_bound=0.5,
                          output_init_scale=3.0),
    "iaf_conditional_random":
        lambda evaluation="blocked": jb.inverse_autoregressive(
            made(D, (8,), input_order="random", cond_shape=(2,), seed=4, evaluation=evaluation)),
    "maf_stack_conditional": maf_stack,
}
DENSE_TWINS = {name: functools.partial(build, evaluation="dense")
               for name, build in BUILDERS.items()}

# Kept small: every case costs ~10 compilations. The order/degree options are checked
# exhaustively at the MADE level (tests/nets/test_made.py, test_made_blocked.py); edge
# cases (no hidden layer, D = 1, reversed order) and a function conditioner in
# tests/bijectors/test_autoregressive.py.
CASES = [
    BijectorCase("maf_random_order_random_degrees",
                 BUILDERS["maf_random_order_random_degrees"], (D,), bad_inputs=MISMATCHED),
    BijectorCase("maf_explicit_order_relu_softplus",
                 BUILDERS["maf_explicit_order_relu_softplus"], (D,)),
    BijectorCase("maf_conditional_bounded", BUILDERS["maf_conditional_bounded"],
                 (D,), cond_shape=(3,), bad_inputs=MISMATCHED,
                 forward_edges=np.array([-50.0, 0.0, 3.0, 50.0, 1.0]),
                 inverse_edges=np.array([-50.0, 0.0, 3.0, 50.0, 1.0])),
    BijectorCase("iaf_conditional_random", BUILDERS["iaf_conditional_random"],
                 (D,), cond_shape=(2,), bad_inputs=MISMATCHED),
    # The MAF stack: a scanned pair of layers, batch norm, conditioning (the odd last layer
    # and the unrolled layout are checked in tests/flows/test_maf.py).
    BijectorCase("maf_stack_conditional", BUILDERS["maf_stack_conditional"], (D,),
                 cond_shape=(2,), trainable_state=True, bad_inputs=MISMATCHED),
]
