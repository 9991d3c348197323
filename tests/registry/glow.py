"""Registry cases for Glow's pieces: ActNorm, the LU 1x1 convolution, squeeze, the
multi-scale factor-out and one Glow step (ActNorm -> 1x1 conv -> affine coupling)."""

import jflows.bijectors as jb
from jflows.bijectors.actnorm import actnorm
from jflows.bijectors.conv1x1 import invertible_conv1x1
from jflows.bijectors.multiscale import factor_out
from jflows.bijectors.squeeze import squeeze
from jflows.flows.glow import glow_bijector, glow_step
from jflows.testing import BijectorCase

IMAGE = (4, 4, 4)
WRONG_CHANNELS = [((4, 4, 3), "3 channels where init saw 4")]

CASES = [
    BijectorCase("actnorm_image", actnorm, IMAGE, trainable_state=True,
                 bad_inputs=WRONG_CHANNELS),
    BijectorCase("actnorm_vector", lambda: actnorm(event_ndims=1), (3,), trainable_state=True),
    BijectorCase("conv1x1_image", invertible_conv1x1, IMAGE, bad_inputs=WRONG_CHANNELS),
    BijectorCase("conv1x1_vector", lambda: invertible_conv1x1(event_ndims=1), (5,)),
    BijectorCase("squeeze", squeeze, (4, 6, 2),
                 bad_inputs=[((3, 4, 2), "height 3 not divisible by 2", "forward"),
                             ((2, 3, 6), "6 channels not divisible by 4", "inverse")]),
    BijectorCase("unsqueeze_factor_3", lambda: jb.invert(squeeze(3)), (2, 1, 18)),
    # Inner part with params, state and a shape change inside (squeeze ... unsqueeze).
    BijectorCase("factor_out_multiscale",
                 lambda: factor_out(jb.chain(squeeze(), actnorm(), invertible_conv1x1(),
                                             jb.invert(squeeze()))),
                 (4, 4, 4), trainable_state=True),
    BijectorCase("factor_out_odd_channels_elementwise",
                 lambda: factor_out(jb.scale(param_shape=(2,)), event_ndims=3), (2, 2, 3)),
    BijectorCase("glow_step", lambda: glow_step(4, hidden_channels=8), IMAGE,
                 trainable_state=True, bad_inputs=WRONG_CHANNELS),
    # The whole multi-scale stack (learned prior included); only the checks that test its
    # math, as each compilation of the stack is slow (tests/flows/test_glow.py has the rest).
    BijectorCase("glow_two_levels",
                 lambda: glow_bijector((4, 4, 2), num_levels=2, num_steps=1, hidden_channels=4,
                                       learned_prior=True),
                 (4, 4, 2), checks=("round_trip", "log_det_vs_jacobian", "transformed")),
]
