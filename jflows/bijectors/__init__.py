"""Bijectors as pure functions: ``init``, ``forward``, ``inverse`` over explicit pytrees.

See :mod:`jflows.bijectors.base` for the contract.
"""

from jflows.bijectors.autoregressive import inverse_autoregressive, masked_autoregressive
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
from jflows.bijectors.permute import permute, reshape, reverse

__all__ = [
    "EMPTY",
    "BatchNormInfo",
    "BatchNormState",
    "Bijector",
    "affine_scalar",
    "affine_tril_lowrank",
    "autodiff_log_det",
    "batch_norm",
    "batch_norm_metrics",
    "block",
    "chain",
    "elementwise",
    "exp",
    "fill_triangular",
    "fill_triangular_inverse",
    "forward_and_log_det",
    "forward_log_det_jacobian",
    "forward_value",
    "identity",
    "inline",
    "invert",
    "inverse_and_log_det",
    "inverse_autoregressive",
    "inverse_log_det_jacobian",
    "inverse_value",
    "leaky_relu",
    "masked_autoregressive",
    "normal_cdf",
    "output_event_ndims",
    "permute",
    "recompute_batch_norm_statistics",
    "reshape",
    "reverse",
    "scale",
    "scan",
    "shift",
    "sigmoid",
    "softplus",
    "tanh",
]
