"""Registry cases for MADE-based bijectors: MAF / IAF layers and the MAF stack."""

import numpy as np

import jflows.bijectors as jb
from jflows.flows import maf_bijector
from jflows.nets import MADE
from jflows.testing import BijectorCase

D = 5
MISMATCHED = [((4, 4), "last axis 4 where the MADE has event_size 5")]


def made_affine(**made_kwargs):
    bound = made_kwargs.pop("log_scale_bound", None)
    made_kwargs.setdefault("hidden_sizes", (8, 8))
    return jb.masked_autoregressive(MADE(D, **made_kwargs), log_scale_bound=bound)


# Kept small: every case costs ~10 compilations. The order/degree options are checked
# exhaustively at the MADE level (tests/nets/test_made.py); edge cases (no hidden layer,
# D = 1, reversed order) and a function conditioner in tests/bijectors/test_autoregressive.py.
CASES = [
    BijectorCase("maf_random_order_random_degrees",
                 lambda: made_affine(hidden_degrees="random", input_order="random", seed=1), (D,),
                 bad_inputs=MISMATCHED),
    BijectorCase("maf_explicit_order_relu",
                 lambda: made_affine(input_order=(2, 0, 4, 1, 3), hidden_sizes=(7, 6),
                                     activation="relu"), (D,)),
    BijectorCase("maf_conditional_bounded",
                 lambda: made_affine(cond_shape=(3,), log_scale_bound=0.5, output_init_scale=3.0),
                 (D,), cond_shape=(3,), bad_inputs=MISMATCHED,
                 forward_edges=np.array([-50.0, 0.0, 3.0, 50.0, 1.0]),
                 inverse_edges=np.array([-50.0, 0.0, 3.0, 50.0, 1.0])),
    BijectorCase("iaf_conditional_random",
                 lambda: jb.inverse_autoregressive(MADE(D, (8,), input_order="random",
                                                        cond_shape=(2,), seed=4)),
                 (D,), cond_shape=(2,), bad_inputs=MISMATCHED),
    # The MAF stack: a scanned pair of layers, batch norm, conditioning (the odd last layer
    # and the unrolled layout are checked in tests/flows/test_maf.py).
    BijectorCase("maf_stack_conditional",
                 lambda: maf_bijector(D, 2, (8,), cond_shape=(2,)), (D,), cond_shape=(2,),
                 trainable_state=True, bad_inputs=MISMATCHED),
]
