"""Vector fields ``f(t, z[, cond])`` for continuous normalizing flows (Flax linen).

Each module maps a time ``t`` (a scalar) and a batch of vectors ``z`` (``(..., d)``) to
``dz/dt`` of the same shape, acting on each vector independently as
:func:`jflows.ode.ffjord` requires. An optional conditioning input ``cond``
(``(..., c)``, broadcast against ``z``'s batch) is concatenated to ``z``.

* :class:`ConcatTimeMLP`: an MLP on ``[z, t, cond]`` -- the TFP FFJORD tutorial's
  ``MLP_ODE`` (which broadcasts ``t`` to ``d`` identical columns; one column spans the
  same functions).
* :class:`ConcatSquashDense` / :class:`ConcatSquashMLP`: FFJORD's ``ConcatSquashLinear``
  layer, ``h -> (W h + b) * sigmoid(W_g t + b_g) + w_b t``, stacked with an activation
  between layers (used by FFJORD's tabular and toy models and the diffrax CNF example).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp


def _time_column(t, like):
    """``t`` as a ``(..., 1)`` column with ``like``'s batch shape and dtype."""
    return jnp.broadcast_to(jnp.asarray(t, like.dtype), like.shape[:-1] + (1,))


def _with_cond(z, cond):
    if cond is None:
        return z
    cond = jnp.asarray(cond, z.dtype)
    batch = jnp.broadcast_shapes(z.shape[:-1], cond.shape[:-1])
    z = jnp.broadcast_to(z, batch + z.shape[-1:])
    cond = jnp.broadcast_to(cond, batch + cond.shape[-1:])
    return jnp.concatenate([z, cond], axis=-1)


class ConcatTimeMLP(nn.Module):
    """``f(t, z) = MLP([z, t, cond])``: hidden ``Dense`` layers with ``activation``, linear output.

    Attributes:
      hidden: widths of the hidden layers (the TFP tutorial: ``(8, 8)``, i.e. 3 layers).
      activation: applied after every hidden layer (default ``tanh``).
      out_features: output size; default ``z.shape[-1]``.
    """

    hidden: Sequence[int] = (64, 64)
    activation: Callable = nn.tanh
    out_features: int | None = None

    @nn.compact
    def __call__(self, t, z, cond=None):
        h = _with_cond(z, cond)
        h = jnp.concatenate([h, _time_column(t, h)], axis=-1)
        for width in self.hidden:
            h = self.activation(nn.Dense(width)(h))
        return nn.Dense(self.out_features or z.shape[-1])(h)


class ConcatSquashDense(nn.Module):
    """FFJORD's concat-squash layer: ``(W h + b) * sigmoid(W_g t + b_g) + w_b t``.

    The time gates (``sigmoid``) and shifts (bias-free) are per output unit.
    """

    features: int

    @nn.compact
    def __call__(self, t, h):
        t = _time_column(t, h)
        gate = nn.sigmoid(nn.Dense(self.features, name="gate")(t))
        shift = nn.Dense(self.features, use_bias=False, name="shift")(t)
        return nn.Dense(self.features, name="linear")(h) * gate + shift


class ConcatSquashMLP(nn.Module):
    """Concat-squash layers of widths ``hidden`` with ``activation``, then one to ``d``.

    ``cond`` (if given) is concatenated to ``z`` at the input.
    """

    hidden: Sequence[int] = (64, 64)
    activation: Callable = nn.tanh
    out_features: int | None = None

    @nn.compact
    def __call__(self, t, z, cond=None):
        h = _with_cond(z, cond)
        for width in self.hidden:
            h = self.activation(ConcatSquashDense(width)(t, h))
        return ConcatSquashDense(self.out_features or z.shape[-1])(t, h)
