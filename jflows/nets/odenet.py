"""Vector fields ``f(t, z[, cond])`` for continuous normalizing flows (Flax linen).

Each module maps a time ``t`` (a scalar) and a batch of vectors ``z`` (``(..., d)``) to
``dz/dt`` of the same shape, acting on each vector independently as
:func:`jflows.ode.ffjord` requires. An optional conditioning input ``cond``
(``(..., c)``, broadcast against ``z``'s batch) enters the first layer like ``z``.

* :class:`ConcatTimeMLP`: an MLP on the concatenation ``[z, t, cond]`` -- the TFP FFJORD
  tutorial's ``MLP_ODE`` (which broadcasts ``t`` to ``d`` identical columns; one column
  spans the same functions).
* :class:`ConcatSquashDense` / :class:`ConcatSquashMLP`: FFJORD's ``ConcatSquashLinear``
  layer, ``h -> (W h + b) * sigmoid(W_g t + b_g) + w_b t``, stacked with an activation
  between layers (used by FFJORD's tabular and toy models and the diffrax CNF example).

Time enters as a scalar: ``W [z; t; cond] + b`` is computed as ``W_z z + t w_t + W_c cond
+ b`` and the concat-squash gates as vectors broadcast over the batch, the same functions
without building concatenated copies of the batch at every evaluation (measurably faster
on CPU, see BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp


class _TimeVector(nn.Module):
    """``t w + b`` for a scalar ``t``: a Dense layer on the 1-vector ``[t]``."""

    features: int
    use_bias: bool = True

    @nn.compact
    def __call__(self, t, dtype):
        return nn.Dense(self.features, use_bias=self.use_bias, name="dense")(
            jnp.reshape(jnp.asarray(t, dtype), (1,))
        )


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
        widths = (*self.hidden, self.out_features or z.shape[-1])
        # First layer: W [z; t; cond] + b, with t's column as a vector.
        h = nn.Dense(widths[0], name="input")(z)
        h = h + _TimeVector(widths[0], use_bias=False, name="time")(t, h.dtype)
        if cond is not None:
            h = h + nn.Dense(widths[0], use_bias=False, name="cond")(jnp.asarray(cond, z.dtype))
        for i, width in enumerate(widths[1:], start=1):
            h = nn.Dense(width, name=f"dense_{i}")(self.activation(h))
        return h


class ConcatSquashDense(nn.Module):
    """FFJORD's concat-squash layer: ``(W h + b) * sigmoid(W_g t + b_g) + w_b t``.

    The time gate (``sigmoid``) and shift (bias-free) are per output unit, computed from
    the scalar ``t`` and broadcast over the batch.
    """

    features: int

    @nn.compact
    def __call__(self, t, h):
        gate = nn.sigmoid(_TimeVector(self.features, name="gate")(t, h.dtype))
        shift = _TimeVector(self.features, use_bias=False, name="shift")(t, h.dtype)
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
        h = z
        if cond is not None:
            cond = jnp.asarray(cond, z.dtype)
            batch = jnp.broadcast_shapes(z.shape[:-1], cond.shape[:-1])
            h = jnp.concatenate([jnp.broadcast_to(z, batch + z.shape[-1:]),
                                 jnp.broadcast_to(cond, batch + cond.shape[-1:])], axis=-1)
        for width in self.hidden:
            h = self.activation(ConcatSquashDense(width)(t, h))
        return ConcatSquashDense(self.out_features or z.shape[-1])(t, h)
