"""Squeeze: space-to-depth of images, ``(H, W, C) -> (H/f, W/f, C f^2)``; ``log|det J| = 0``.

Dinh et al. 2017 (Real NVP) Sec. 3.6 and Glow's ``squeeze2d``: each ``f x f`` block of
pixels becomes one pixel with ``f^2`` times the channels, in Glow's channel order::

    y[i, j, c f^2 + a f + b] = x[i f + a, j f + b, c]

``forward`` squeezes, ``inverse`` unsqueezes (``invert(squeeze())`` is depth-to-space).
A permutation of the entries, so the log-det is 0. Same map as TFP's
``tfb.Chain([tfb.Reshape((H/f, W/f, C f^2), (H/f, W/f, C, f, f)),
tfb.Transpose([0, 2, 4, 1, 3]), tfb.Reshape((H/f, f, W/f, f, C), (H, W, C))])``.
"""

from __future__ import annotations

import jax.numpy as jnp

from jflows.bijectors.base import EMPTY, Bijector, batch_shape_of, check_event_rank


def _no_params(key, x):
    del key
    check_event_rank(x, 3, "squeeze")
    return EMPTY, EMPTY


def squeeze(factor: int = 2) -> Bijector:
    """Space-to-depth by ``factor`` on ``(H, W, C)`` events (``H``, ``W`` multiples of it)."""
    if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
        raise ValueError(f"squeeze: factor must be an int >= 1, got {factor!r}.")
    f = factor

    def forward(params, state, x, *, cond=None, train=False, key=None):
        del params, cond, train, key
        check_event_rank(x, 3, "squeeze.forward")
        batch = batch_shape_of(x, 3)
        h, w, c = x.shape[-3:]
        if h % f or w % f:
            raise ValueError(f"squeeze.forward: expected height and width divisible by the "
                             f"factor {f}, got input of shape {tuple(x.shape)}.")
        y = x.reshape(*batch, h // f, f, w // f, f, c)
        n = len(batch)
        y = jnp.transpose(y, (*range(n), n, n + 2, n + 4, n + 1, n + 3))
        return y.reshape(*batch, h // f, w // f, c * f * f), jnp.zeros(batch, x.dtype), state

    def inverse(params, state, y, *, cond=None, train=False, key=None):
        del params, cond, train, key
        check_event_rank(y, 3, "squeeze.inverse")
        batch = batch_shape_of(y, 3)
        h, w, c = y.shape[-3:]
        if c % (f * f):
            raise ValueError(f"squeeze.inverse: expected channels divisible by {f * f} "
                             f"(factor {f} squared), got input of shape {tuple(y.shape)}.")
        x = y.reshape(*batch, h, w, c // (f * f), f, f)
        n = len(batch)
        x = jnp.transpose(x, (*range(n), n, n + 3, n + 1, n + 4, n + 2))
        return x.reshape(*batch, h * f, w * f, c // (f * f)), jnp.zeros(batch, y.dtype), state

    return Bijector(_no_params, forward, inverse, 3, 3)
