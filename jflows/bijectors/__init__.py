"""Bijectors as pure functions: ``init``, ``forward``, ``inverse`` over explicit pytrees.

See :mod:`jflows.bijectors.base` for the contract.
"""

from jflows.bijectors.actnorm import ActNormState, actnorm
from jflows.bijectors.autoregressive import (
    affine_transformer,
    inverse_autoregressive,
    masked_autoregressive,
    softplus_affine_transformer,
)
from jflows.bijectors.base import (
    EMPTY,
    Bijector,
    forward_and_log_det,
    forward_log_det_jacobian,
    forward_value,
    inverse_and_log_det,
    inverse_log_det_jacobian,
    inverse_value,
    output_event_ndims,
)
from jflows.bijectors.batch_norm import (
    BatchNormInfo,
    BatchNormState,
    batch_norm,
    batch_norm_metrics,
    recompute_batch_norm_statistics,
)
from jflows.bijectors.combinators import block, chain, invert, scan
from jflows.bijectors.conv1x1 import Conv1x1State, invertible_conv1x1
from jflows.bijectors.coupling import (
    MLPConditioner,
    linen_conditioner,
    masked_coupling,
    split_coupling,
)
from jflows.bijectors.elementwise import (
    affine_scalar,
    elementwise,
    exp,
    identity,
    leaky_relu,
    normal_cdf,
    scale,
    shift,
    sigmoid,
    softplus,
    tanh,
)
from jflows.bijectors.inline import autodiff_log_det, inline
from jflows.bijectors.linear import affine_tril_lowrank, fill_triangular, fill_triangular_inverse
from jflows.bijectors.multiscale import factor_out
from jflows.bijectors.permute import permute, reshape, reverse
from jflows.bijectors.spline import (
    SplineKnots,
    rational_quadratic_spline,
    spline_forward,
    spline_inverse,
    spline_knots,
    spline_transformer,
)
from jflows.bijectors.squeeze import squeeze

__all__ = [
    "ActNormState",
    "BatchNormInfo",
    "BatchNormState",
    "Bijector",
    "Conv1x1State",
    "EMPTY",
    "MLPConditioner",
    "SplineKnots",
    "actnorm",
    "affine_scalar",
    "affine_transformer",
    "affine_tril_lowrank",
    "autodiff_log_det",
    "batch_norm",
    "batch_norm_metrics",
    "block",
    "chain",
    "elementwise",
    "exp",
    "factor_out",
    "fill_triangular",
    "fill_triangular_inverse",
    "forward_and_log_det",
    "forward_log_det_jacobian",
    "forward_value",
    "identity",
    "inline",
    "inverse_and_log_det",
    "inverse_autoregressive",
    "inverse_log_det_jacobian",
    "inverse_value",
    "invert",
    "invertible_conv1x1",
    "leaky_relu",
    "linen_conditioner",
    "masked_autoregressive",
    "softplus_affine_transformer",
    "masked_coupling",
    "normal_cdf",
    "output_event_ndims",
    "permute",
    "rational_quadratic_spline",
    "recompute_batch_norm_statistics",
    "reshape",
    "reverse",
    "scale",
    "scan",
    "shift",
    "sigmoid",
    "softplus",
    "spline_forward",
    "spline_inverse",
    "spline_knots",
    "spline_transformer",
    "split_coupling",
    "squeeze",
    "tanh",
]
