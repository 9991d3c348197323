"""Glow (Kingma & Dhariwal 2018) for ``(H, W, C)`` images, as a ready-made density model.

In the density direction (data -> base) one **step of flow** is::

    ActNorm -> invertible 1x1 convolution -> affine coupling

(:func:`glow_step`; the coupling is :func:`jflows.bijectors.coupling.split_coupling`
keeping the first half of the channels and transforming the second with
``y_B = (x_B - t) exp(-s)``, ``(t, s) = NN(x_A)``, ``NN`` the zero-initialised convolutional
network :class:`GlowConditioner`). ``L`` **levels** of ``K`` steps each form the
multi-scale architecture (Dinh et al. 2017, Sec. 3.6; Glow Fig. 2b)::

    level l on (H, W, C):   squeeze -> K steps on (H/2, W/2, 4C)
                            -> [learned prior] -> factor out 2C channels
                            -> level l+1 on the other (H/2, W/2, 2C) -> unsqueeze

(the last level factors nothing out). Every factored-out variable goes to the standard
normal base untouched (:func:`jflows.bijectors.multiscale.factor_out`), so the model is an
exact flow on the whole ``(H, W, C)`` event: ``log p(x) = log N(f^{-1}(x); 0, I) +
log|det d f^{-1}/dx|``, computed by :func:`jflows.distributions.transformed`. The levels
end with an unsqueeze so that the base's event has the data's shape (the base variables
are a fixed rearrangement of Glow's ``z_1, ..., z_L``). With ``learned_prior=True`` the
factored-out half gets Glow's learned conditional prior ``p(z_2 | z_1) = N(mu(z_1),
sigma(z_1)^2)``, written as one more affine coupling just before the split (``z_2 =
mu + sigma eps`` with ``eps`` standard normal). The top level's prior stays ``N(0, I)``
(Glow's unconditional models learn its mean and scale; not done here).

Differences from Glow's code, all stated: the coupling's log-scale is soft-bounded,
``s = b tanh(raw / b)`` (``log_scale_bound``, RealNVP's tanh scale; Glow used
``sigmoid(raw + 2)``); the conditioner has no ActNorm inside and its zero-initialised
last convolution has no extra learned ``exp(3 logs)`` scale; the 1x1 convolution is the
LU-parametrised one (Glow's "LU decomposed" variant).

**Data.** The model is a density on continuous images. For 8-bit pixels ``k`` train on
dequantized values ``x = (k + u) / 256 - 1/2``, ``u ~ U[0, 1)^D`` fresh per batch (Glow's
preprocessing; ``jflows.data.dequantize(key, k) - 0.5``); the density of the dequantized
pixels ``k + u`` on ``[0, 256)^D`` is then ``log p(x) - D log 256``, and bits per dimension
are ``jflows.units.bits_per_dim(log p(x) - D log 256, D)`` (an upper bound on the discrete
model's, Theis et al. 2016).

**ActNorm initialisation.** Each ActNorm initialises itself from the first batch it sees in
a ``train=True`` density pass (see :mod:`jflows.bijectors.actnorm`); call
``flow.log_prob_and_state(params, state, x_init, train=True)`` once on a large batch
before training to choose that batch, as Glow does.
"""

from __future__ import annotations

import flax.linen as nn

import jflows.bijectors as jb
from jflows.bijectors.actnorm import actnorm
from jflows.bijectors.autoregressive import affine_transformer
from jflows.bijectors.conv1x1 import invertible_conv1x1
from jflows.bijectors.coupling import split_coupling
from jflows.bijectors.multiscale import factor_out
from jflows.bijectors.squeeze import squeeze
from jflows.distributions import standard_normal, transformed
from jflows.distributions.transformed import TransformedDistribution

_AFFINE_PARAMS = 2  # (shift, raw log-scale) per element: affine_transformer's K


class GlowConditioner(nn.Module):
    """Glow's ``NN()``: ``conv 3x3 -> ReLU -> conv 1x1 -> ReLU -> conv 3x3`` (zero-initialised,
    so the coupling starts at the identity), ``(..., H, W, C_in) -> (..., H, W, out_channels,
    params_per_dim)``, "SAME" padding, params in the input's dtype."""

    out_channels: int
    params_per_dim: int = _AFFINE_PARAMS
    hidden_channels: int = 512

    @nn.compact
    def __call__(self, x):
        dtype = x.dtype
        h = nn.relu(nn.Conv(self.hidden_channels, (3, 3), padding="SAME", dtype=dtype,
                            param_dtype=dtype)(x))
        h = nn.relu(nn.Conv(self.hidden_channels, (1, 1), dtype=dtype, param_dtype=dtype)(h))
        out = nn.Conv(self.out_channels * self.params_per_dim, (3, 3), padding="SAME",
                      kernel_init=nn.initializers.zeros, dtype=dtype, param_dtype=dtype)(h)
        return out.reshape(out.shape[:-1] + (self.out_channels, self.params_per_dim))


def _affine_coupling(channels: int, hidden_channels: int, log_scale_bound) -> jb.Bijector:
    """The first ``channels // 2`` channels condition an affine map of the others."""
    if channels < 2:
        raise ValueError(f"glow: an affine coupling needs at least 2 channels, got {channels}.")
    kept = channels // 2
    net = GlowConditioner(channels - kept, _AFFINE_PARAMS, hidden_channels)
    return split_coupling(kept, net, affine_transformer(log_scale_bound), event_ndims=3)


def glow_step(channels: int, *, hidden_channels: int = 512, log_scale_bound: float = 2.0,
              axis_name=None) -> jb.Bijector:
    """One step of flow on ``(H, W, channels)`` images: in the density direction ActNorm,
    the LU 1x1 convolution, then the affine coupling (params/state
    ``{'coupling', 'conv1x1', 'actnorm'}``; ``forward`` runs them in that order).

    ``axis_name``: ActNorm's initialisation statistics are averaged over it (data-parallel).
    """
    return jb.chain(
        coupling=_affine_coupling(channels, hidden_channels, log_scale_bound),
        conv1x1=invertible_conv1x1(),
        actnorm=actnorm(axis_name=axis_name),
    )


def _level(shape, level: int, num_levels: int, num_steps: int, options: dict,
           learned_prior: bool) -> jb.Bijector:
    h, w, c = shape
    squeezed = 4 * c
    parts = {"squeeze": squeeze()}
    if level < num_levels - 1:
        kept = squeezed - squeezed // 2  # factor_out's inner half
        parts["deeper"] = factor_out(_level((h // 2, w // 2, kept), level + 1, num_levels,
                                            num_steps, options, learned_prior))
        if learned_prior:
            parts["prior"] = _affine_coupling(squeezed, options["hidden_channels"],
                                              options["log_scale_bound"])
    parts["steps"] = jb.scan(glow_step(squeezed, **options), num_steps)
    parts["unsqueeze"] = jb.invert(squeeze())
    return jb.chain(**parts)


def glow_bijector(image_shape, num_levels: int = 3, num_steps: int = 32, *,
                  hidden_channels: int = 512, log_scale_bound: float = 2.0,
                  learned_prior: bool = False, axis_name=None) -> jb.Bijector:
    """The Glow stack as one shape-preserving bijector on ``image_shape = (H, W, C)``.

    Args:
      image_shape: ``(H, W, C)``; ``H`` and ``W`` must be divisible by ``2**num_levels``.
      num_levels: ``L``, the number of squeezes (scales).
      num_steps: ``K``, steps of flow per level (compiled once per level: ``scan``).
      hidden_channels: width of each coupling's :class:`GlowConditioner`.
      log_scale_bound: soft bound of each coupling's log-scale (see the module docstring).
      learned_prior: Glow's learned prior ``p(z_2 | z_1)`` on each factored-out half.
      axis_name: ActNorm's data-parallel axis for its initialisation statistics.

    Params/state nest per level: ``{'squeeze', 'deeper', ['prior'], 'steps',
    'unsqueeze'}``, ``'deeper'`` holding the next level's (absent at the last level),
    ``'steps'`` the ``K`` steps' :func:`glow_step` trees stacked on a leading axis.
    """
    h, w, c = (int(d) for d in image_shape)
    if num_levels < 1 or num_steps < 1:
        raise ValueError(f"glow: num_levels and num_steps must be >= 1, got {num_levels} "
                         f"and {num_steps}.")
    if h % 2**num_levels or w % 2**num_levels:
        raise ValueError(f"glow: image height and width must be divisible by 2**num_levels = "
                         f"{2**num_levels}, got image_shape {tuple(image_shape)}.")
    options = {"hidden_channels": hidden_channels, "log_scale_bound": log_scale_bound,
               "axis_name": axis_name}
    return _level((h, w, c), 0, num_levels, num_steps, options, learned_prior)


def glow(image_shape, num_levels: int = 3, num_steps: int = 32, **kwargs
         ) -> TransformedDistribution:
    """Glow with a standard normal base on ``image_shape``; options as :func:`glow_bijector`.

    A :class:`~jflows.distributions.DensityModel` (``transformed``): params and state
    ``{'base', 'bijector'}``, the bijector's state holding the ActNorm initialisation and
    the 1x1 convolutions' fixed permutations. See the module docstring for dequantization
    and bits/dim.
    """
    bijector = glow_bijector(image_shape, num_levels, num_steps, **kwargs)
    return transformed(standard_normal(tuple(int(d) for d in image_shape)), bijector)
