"""The layout of PixelCNN++'s per-pixel likelihood parameters, and the pixel rescaling.

The network (:mod:`jflows.nets.pixelcnnpp`) outputs, at each pixel, a raw vector of
:func:`num_params` values; the discretized logistic mixture
(:mod:`jflows.distributions.logistic_mixture`) reads it with :func:`split_params`. For
``K`` components and ``C`` channels the vector is laid out::

    [logits (K) | locs (C*K) | log_scales (C*K) | coupling coefficients (C(C-1)/2*K)]

so ``num_params = K (1 + 2 C + C (C - 1) / 2)``: for ``C = 3`` the reference code's
``10 * K`` values per pixel. :func:`split_params` also maps the raw values to the
likelihood's parameters: ``log_scale`` clamped below at :data:`MIN_LOG_SCALE`, coupling
coefficients ``tanh(raw)`` in ``(-1, 1)``.

Both the network's input and the likelihood work on the rescaled pixel axis
``u = 2 x / 255 - 1`` in ``[-1, 1]`` (:func:`to_unit_interval`).

The layout sits with the networks (the lower layer) so that the network never imports
the likelihood; the likelihood imports it from here.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

NUM_VALUES = 256
"""Pixel values are the integers ``0 .. NUM_VALUES - 1`` (8-bit images)."""
MIN_LOG_SCALE = -7.0
"""Lower clamp of ``log_scale``, as in the PixelCNN++ reference code."""


class LogisticMixtureParams(NamedTuple):
    """Per-pixel mixture parameters, split from the raw vector by :func:`split_params`.

    Shapes (``...`` = batch and pixel axes): ``logits (..., K)``, ``locs (..., C, K)``,
    ``log_scales (..., C, K)`` (clamped at :data:`MIN_LOG_SCALE`), ``coeffs
    (..., C(C-1)/2, K)`` in ``(-1, 1)``; coefficient ``c (c-1)/2 + c'`` couples channel
    ``c'`` into channel ``c > c'``.
    """

    logits: jax.Array
    locs: jax.Array
    log_scales: jax.Array
    coeffs: jax.Array


def num_params(num_channels: int, num_logistic_mix: int) -> int:
    """Length of the raw parameter vector per pixel: ``K (1 + 2 C + C (C - 1) / 2)``."""
    return num_logistic_mix * (1 + 2 * num_channels + num_channels * (num_channels - 1) // 2)


def split_params(raw: jax.Array, num_channels: int, num_logistic_mix: int) -> LogisticMixtureParams:
    """Split a raw ``(..., num_params(C, K))`` array into :class:`LogisticMixtureParams`."""
    c, k = num_channels, num_logistic_mix
    expected = num_params(c, k)
    if raw.shape[-1] != expected:
        raise ValueError(
            f"logistic mixture: expected {expected} raw parameters per pixel on the last axis "
            f"({k} components, {c} channels), got shape {tuple(raw.shape)}."
        )
    batch = raw.shape[:-1]
    n_coeffs = c * (c - 1) // 2
    logits, locs, log_scales, coeffs = jnp.split(raw, [k, k + c * k, k + 2 * c * k], axis=-1)
    return LogisticMixtureParams(
        logits=logits,
        locs=locs.reshape(*batch, c, k),
        log_scales=jnp.maximum(log_scales.reshape(*batch, c, k), MIN_LOG_SCALE),
        coeffs=jnp.tanh(coeffs.reshape(*batch, n_coeffs, k)),
    )


def to_unit_interval(x: jax.Array, dtype=None) -> jax.Array:
    """Pixel values ``0 .. 255`` to ``[-1, 1]``: ``u = 2 x / 255 - 1``, in ``dtype``.

    ``dtype`` defaults to ``x``'s own floating dtype, or to JAX's default float dtype for
    integer ``x``.
    """
    if dtype is None:
        dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.result_type(float)
    return x.astype(dtype) * (2.0 / (NUM_VALUES - 1)) - 1.0
