"""Registry cases for splines and couplings: the elementwise spline, affine and spline
couplings (split and masked layouts, conditional), NSF-autoregressive and the stacks."""

import numpy as np

from jflows.bijectors.autoregressive import masked_autoregressive
from jflows.bijectors.coupling import MLPConditioner, masked_coupling, split_coupling
from jflows.bijectors.spline import rational_quadratic_spline, spline_transformer
from jflows.flows.nsf import nsf_autoregressive_bijector
from jflows.flows.realnvp import realnvp_bijector
from jflows.nets import MADE
from jflows.testing import BijectorCase

D = 5
BINS = 4
K = 3 * BINS - 1
# Knot-free edges: far in both tails, exactly on +-B, and 0 (a knot of the identity spline).
EDGES = np.array([-1e4, -2.0, 0.0, 2.0, 1e4])
MISMATCHED = [((4, 6), "last axis 6 where the conditioner was built for 5")]


def spline_coupling(**kwargs):
    # Not zero-initialised so that param_noise moves every spline away from the identity.
    net = MLPConditioner(D - 2, K, (8,), zero_init=False)
    return split_coupling(2, net, spline_transformer(BINS, 2.0), **kwargs)


CASES = [
    BijectorCase("spline_elementwise",
                 lambda: rational_quadratic_spline(BINS, 2.0, param_shape=(3,)), (3,),
                 param_noise=1.0, forward_edges=EDGES[:3], inverse_edges=EDGES[2:],
                 bad_inputs=[((4, 5), "last axis 5 where param_shape is (3,)")]),
    BijectorCase("spline_elementwise_scalar_params",
                 lambda: rational_quadratic_spline(3, 1.5), (3,), param_noise=1.0,
                 scalar_base=True),
    BijectorCase("coupling_affine_split",
                 lambda: split_coupling(2, MLPConditioner(D - 2, 2, (8,), zero_init=False)),
                 (D,), bad_inputs=MISMATCHED),
    # (Larger param noise makes derivatives ~1e-3 here: float32 round trips then lose 1e-3.)
    BijectorCase("coupling_spline_split", spline_coupling, (D,),
                 forward_edges=EDGES, inverse_edges=EDGES, bad_inputs=MISMATCHED),
    BijectorCase("coupling_spline_masked_conditional",
                 lambda: masked_coupling(np.arange(D) % 2 == 0,
                                         MLPConditioner(D, K, (8,), zero_init=False),
                                         spline_transformer(BINS, 2.0), cond_shape=(3,)),
                 (D,), cond_shape=(3,),
                 bad_inputs=[((4, 4), "last axis 4 where the mask has 5")]),
    BijectorCase("nsf_autoregressive_layer",
                 lambda: masked_autoregressive(MADE(D, (8,), params_per_dim=K,
                                                    output_init_scale=1.0),
                                               transformer=spline_transformer(BINS, 2.0)),
                 (D,), forward_edges=EDGES, inverse_edges=EDGES),
    BijectorCase("realnvp_stack_batch_norm_conditional",
                 lambda: realnvp_bijector(D, 3, (8,), batch_norm=True, cond_shape=(2,)),
                 (D,), cond_shape=(2,), trainable_state=True),
    BijectorCase("nsf_autoregressive_stack",
                 lambda: nsf_autoregressive_bijector(D, 2, (8,), num_bins=BINS, bound=2.0),
                 (D,), param_noise=0.3),
]
