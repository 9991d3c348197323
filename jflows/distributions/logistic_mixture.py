"""The discretized logistic mixture likelihood of PixelCNN++ (Salimans et al. 2017, sec. 2.1-2.2).

A pixel with ``C`` channels of 8-bit values ``x_c in {0, ..., 255}`` gets the distribution

    p(x) = sum_k pi_k prod_c P(x_c | k, x_<c),      pi = softmax(logits),

one mixture indicator ``k`` per pixel (shared by its channels). Each channel is a logistic
of location ``m_ck`` and scale ``s_ck = exp(log_scale_ck)`` on the rescaled axis
``u = 2 x / 255 - 1`` in ``[-1, 1]``, discretized into bins of half-width ``1/255``:

    P(x_c | k) = sigmoid((u_c + 1/255 - m_ck) / s_ck) - sigmoid((u_c - 1/255 - m_ck) / s_ck),

with the edge bins taking the tails: ``P(0) = sigmoid((-1 + 1/255 - m) / s)`` and
``P(255) = 1 - sigmoid((1 - 1/255 - m) / s)``. For RGB the channels are coupled
linearly (paper eq. 3): ``m_ck = loc_ck + sum_{c' < c} coeff_{c c' k} u_c'`` with
``coeff = tanh(raw)``; generally ``C (C - 1) / 2`` coupling coefficients per component,
none for grayscale.

Numerics. Everything is computed in log space, without the thresholds of the reference
code (``cdf_delta > 1e-5``). With ``a = (u + 1/255 - m)/s`` and ``b = (u - 1/255 - m)/s``,

    sigmoid(a) - sigmoid(b) = sigmoid(a) * sigmoid(-b) * (1 - exp(-(a - b))),

so ``log P = log_sigmoid(a) + log_sigmoid(-b) + log1mexp(a - b)``: both log-sigmoids are
stable in either tail and ``a - b = (2/255) / s`` does not depend on ``x``, so the
difference of two nearly equal CDFs is never formed. ``log1mexp(d) = log(1 - exp(-d))``
switches between ``log(-expm1(-d))`` and ``log1p(-exp(-d))`` at ``d = log 2`` (Maechler
2012) and is evaluated from ``log d`` when ``d`` would underflow. Every branch is finite
for finite inputs, so ``jnp.where`` between them gives finite gradients. ``log_scale`` is
clamped below at -7 as in the reference code.

The raw parameter vector (the network's last axis, length ``num_params(C, K)``) is laid out
``[logits (K) | locs (C*K) | log_scales (C*K) | coupling coefficients (C(C-1)/2*K)]``;
for C = 3 that is the reference code's ``10 * K`` values per pixel. That layout, the
``log_scale`` clamp and the rescaling ``u = 2 x / 255 - 1`` are written once, in
:mod:`jflows.nets.logistic_mixture_layout` (shared with the network that produces the
vector).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jflows.nets.logistic_mixture_layout import (
    NUM_VALUES,
    LogisticMixtureParams,
    split_params,
    to_unit_interval,
)

_HALF_BIN = 1.0 / (NUM_VALUES - 1)  # half the bin width on the [-1, 1] axis
_LOG_BIN_WIDTH = math.log(2.0 * _HALF_BIN)
_LOG1MEXP_SERIES_BELOW = -15.0  # log d below which log1mexp(d) = log d - d/2 to float precision


def log1mexp(d: jax.Array) -> jax.Array:
    """``log(1 - exp(-d))`` for ``d > 0``, accurate over the whole range (Maechler 2012)."""
    small = d < math.log(2.0)
    d_small = jnp.where(small, d, 1.0)  # keep each branch's argument in its good range
    d_large = jnp.where(small, 1.0, d)
    return jnp.where(small, jnp.log(-jnp.expm1(-d_small)), jnp.log1p(-jnp.exp(-d_large)))


def _log1mexp_from_log(log_d: jax.Array) -> jax.Array:
    """``log1mexp(exp(log_d))``, also where ``exp(log_d)`` underflows (series ``log d - d/2``)."""
    tiny = log_d < _LOG1MEXP_SERIES_BELOW
    d = jnp.exp(jnp.where(tiny, 0.0, log_d))
    return jnp.where(tiny, log_d - 0.5 * jnp.exp(log_d), log1mexp(d))


def _coupled_locs(locs: jax.Array, coeffs: jax.Array, u: jax.Array) -> jax.Array:
    """``m_c = loc_c + sum_{c' < c} coeff_{c c'} u_c'`` for every channel; ``u`` is ``(..., C)``."""
    num_channels = locs.shape[-2]
    means = [locs[..., 0, :]]
    for c in range(1, num_channels):
        first = c * (c - 1) // 2
        shift = sum(coeffs[..., first + j, :] * u[..., j, None] for j in range(c))
        means.append(locs[..., c, :] + shift)
    return jnp.stack(jnp.broadcast_arrays(*means), axis=-2)


def channel_log_probs(params: LogisticMixtureParams, x: jax.Array) -> jax.Array:
    """``log P(x_c | k, x_<c)`` of every channel and component: shape ``(..., C, K)``.

    ``x`` holds integer pixel values ``(..., C)``; see the module docstring for the formula.
    """
    u = to_unit_interval(x, params.locs.dtype)
    centered = u[..., None] - _coupled_locs(params.locs, params.coeffs, u)
    inv_scale = jnp.exp(-params.log_scales)
    upper = inv_scale * (centered + _HALF_BIN)  # a: standardized upper bin edge
    lower = inv_scale * (centered - _HALF_BIN)  # b: standardized lower bin edge
    log_cdf_upper = jax.nn.log_sigmoid(upper)  # log P(X <= upper edge): bin 0
    log_sf_lower = jax.nn.log_sigmoid(-lower)  # log P(X > lower edge): bin 255
    # a - b = (2/255)/s, computed from its log so it never underflows to 0.
    log_width = _log1mexp_from_log(_LOG_BIN_WIDTH - params.log_scales)
    interior = log_cdf_upper + log_sf_lower + log_width
    xi = x[..., None]
    return jnp.where(
        xi <= 0, log_cdf_upper, jnp.where(xi >= NUM_VALUES - 1, log_sf_lower, interior)
    )


def log_prob(raw: jax.Array, x: jax.Array, num_logistic_mix: int) -> jax.Array:
    """Log-probability (nats) of each pixel ``x (..., C)`` under raw params ``(..., P)``.

    ``log p(x) = logsumexp_k [log_softmax(logits)_k + sum_c log P(x_c | k, x_<c)]``.
    Returns shape ``x.shape[:-1]``.
    """
    num_channels = x.shape[-1]
    params = split_params(raw, num_channels, num_logistic_mix)
    if params.logits.shape[:-1] != x.shape[:-1]:
        raise ValueError(
            "logistic mixture: raw params and pixels must share their leading axes, got "
            f"params {tuple(raw.shape)} and pixels {tuple(x.shape)}."
        )
    per_component = channel_log_probs(params, x).sum(axis=-2)
    return jax.nn.logsumexp(jax.nn.log_softmax(params.logits, axis=-1) + per_component, axis=-1)


def sample(raw: jax.Array, key: jax.Array, num_channels: int, num_logistic_mix: int) -> jax.Array:
    """Draw one pixel ``(..., C)`` (int32 in ``[0, 255]``) from raw params ``(..., P)``.

    An exact draw from :func:`log_prob`'s law: pick the component ``k ~ softmax(logits)``,
    then channel by channel draw a continuous logistic around the coupled location (coupled
    to the already *discretized* earlier channels, as the density conditions on them) and
    round it to its bin, the edge bins taking the tails. (The reference code couples to
    the continuous draws instead, a slight mismatch with its own density.)
    """
    params = split_params(raw, num_channels, num_logistic_mix)
    key_mix, key_noise = jax.random.split(key)
    component = jax.random.categorical(key_mix, params.logits, axis=-1)

    def pick(a):  # (..., n, K) -> (..., n): the chosen component's values
        return jnp.take_along_axis(a, component[..., None, None], axis=-1)[..., 0]

    locs, log_scales, coeffs = pick(params.locs), pick(params.log_scales), pick(params.coeffs)
    noise = jax.random.logistic(key_noise, locs.shape, dtype=locs.dtype)
    values, units = [], []
    for c in range(num_channels):
        first = c * (c - 1) // 2
        mean = locs[..., c] + sum(coeffs[..., first + j] * units[j] for j in range(c))
        draw = mean + jnp.exp(log_scales[..., c]) * noise[..., c]
        value = jnp.clip(jnp.round((draw + 1.0) / (2.0 * _HALF_BIN)), 0, NUM_VALUES - 1)
        values.append(value.astype(jnp.int32))
        units.append(to_unit_interval(values[-1], locs.dtype))
    return jnp.stack(values, axis=-1)
