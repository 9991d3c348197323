"""Multi-scale factor-out (Dinh et al. 2017, Real NVP Sec. 3.6; Glow's ``split2d``).

``factor_out(inner)`` splits the last axis (channels) of ``x`` into the first
``k = ceil(C / 2)`` channels, which ``inner`` transforms, and the other ``C - k``, which
pass through unchanged::

    forward(x) = concat(inner.forward(x[..., :k]), x[..., k:])
    log|det J| = log|det J_inner(x[..., :k])|         (the identity part adds 0)

The Jacobian is block-diagonal, so the log-det is exact. Put under a standard normal
base, the passed-through half is modelled by the base directly: in the density direction
those channels are *factored out* at this scale and never reach the deeper layers, which
is Real NVP's / Glow's multi-scale architecture with a fixed ``N(0, I)`` prior on the
factored-out variables (the likelihood stays exact because the base is the product of
independent unit normals over every variable, factored out or not). A learned prior for
the factored-out part, ``p(z_2 | z_1)`` in Glow, is an affine coupling on ``[z_1, z_2]``
placed just before the split; :func:`jflows.flows.glow` adds one with
``learned_prior=True``.

``inner`` must preserve the shape of its input (it may squeeze and unsqueeze inside).
Params, state and info are ``inner``'s; ``cond`` goes to ``inner``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jflows.bijectors.base import Bijector, call_with_info, check_event_rank, reduce_to_batch
from jflows.bijectors.combinators import combined_bijector


def factor_out(inner: Bijector, *, event_ndims: int | None = None) -> Bijector:
    """Apply ``inner`` to the first ``ceil(C / 2)`` channels, pass the rest through.

    Args:
      inner: a bijector whose output has its input's shape.
      event_ndims: the event axes, channels last (default ``max(inner.event_ndims, 1)``;
        3 for ``(H, W, C)`` images).
    """
    if not isinstance(inner, Bijector):
        raise TypeError(f"factor_out: inner must be a Bijector, got {type(inner).__name__}.")
    ndims = max(inner.event_ndims, 1) if event_ndims is None else event_ndims
    if ndims < max(inner.event_ndims, 1):
        raise ValueError(f"factor_out: event_ndims={ndims} is fewer than the inner "
                         f"bijector's {inner.event_ndims} (and at least 1 is needed).")

    def kept_size(x, name):
        check_event_rank(x, ndims, name)
        return x.shape[-1] - x.shape[-1] // 2

    def init(key, x):
        k = kept_size(x, "factor_out.init")
        return inner.init(key, jax.ShapeDtypeStruct((*x.shape[:-1], k), x.dtype))

    def _run(direction, params, state, x, **kwargs):
        name = f"factor_out.{direction}"
        k = kept_size(x, name)
        kept, passed = x[..., :k], x[..., k:]
        y, log_det, state, info = call_with_info(inner, direction, params, state, kept,
                                                 **kwargs)
        if y.shape != kept.shape:
            raise ValueError(f"{name}: the inner bijector must keep its input's shape; it "
                             f"mapped {tuple(kept.shape)} to {tuple(y.shape)}.")
        log_det = reduce_to_batch(log_det, x.ndim - ndims)
        return jnp.concatenate([y, passed], axis=-1), log_det, state, info

    def forward(params, state, x, *, cond=None, train=False, key=None):
        return _run("forward", params, state, x, cond=cond, train=train, key=key)

    def inverse(params, state, y, *, cond=None, train=False, key=None):
        return _run("inverse", params, state, y, cond=cond, train=train, key=key)

    return combined_bijector("factor_out", [inner], init, forward, inverse, ndims)
