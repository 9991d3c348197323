"""Invertible 1x1 convolution, LU-parametrised (Glow, Kingma & Dhariwal 2018, Sec. 3.2).

At every position of the event (every pixel of an ``(H, W, C)`` image) the channel vector
is multiplied by one ``C x C`` matrix::

    forward:  y[h, w] = W x[h, w],      W = P L (U + diag(sign(s) exp(log|s|)))

with ``P`` a fixed permutation, ``L`` unit lower-triangular, ``U`` strictly
upper-triangular. So ``det W = +-prod_c s_c`` and::

    log|det dy/dx| = H W sum_c log|s_c|          (O(C), no determinant is computed)

The inverse ``x = W^{-1} y`` uses ``W^{-1} = (U + diag s)^{-1} L^{-1} P^T``, formed by two
triangular solves of the ``C x C`` identity (``O(C^3)`` per call, independent of the
batch), then one matrix product per position, as ``forward``.

``init`` draws a random rotation ``Q`` (QR of a Gaussian matrix, as Glow's code), factors
it ``Q = P L U`` and starts from it: params ``{'lower': L, 'upper': U, 'log_scale':
log|diag U|}`` (only the strict triangles of ``lower``/``upper`` are read); the
permutation and ``sign(diag U)`` stay fixed and live in the state
(:class:`Conv1x1State`), which no call changes.

This is, per position, TFP's ``tfb.ScaleMatvecLU(lower_upper, permutation)``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from jflows.bijectors.base import Bijector, check_event_rank, sum_broadcast_event


class Conv1x1State(NamedTuple):
    """The fixed part of a 1x1 convolution: ``(P v)_i = v[permutation[i]]`` and the signs
    of the diagonal of ``U``. (TFP's ``ScaleMatvecLU`` takes ``argsort(permutation)``.)"""

    permutation: jax.Array
    sign: jax.Array


def _triangular_factors(params, state):
    """``L`` (unit lower-triangular) and ``U + diag(sign exp(log_scale))`` from the params."""
    eye = jnp.eye(state.sign.shape[-1], dtype=params["log_scale"].dtype)
    lower = jnp.tril(params["lower"], -1) + eye
    upper = jnp.triu(params["upper"], 1) + jnp.diag(state.sign * jnp.exp(params["log_scale"]))
    return eye, lower, upper


def lu_weight(params, state):
    """``W = P L (U + diag(sign(s) exp(log|s|)))``."""
    _, lower, upper = _triangular_factors(params, state)
    return (lower @ upper)[state.permutation]


def lu_inverse_weight(params, state):
    """``W^{-1} = (U + diag s)^{-1} L^{-1} P^T`` by two triangular solves of ``P^T``."""
    eye, lower, upper = _triangular_factors(params, state)
    permutation_t = eye[:, state.permutation]
    return solve_triangular(
        upper, solve_triangular(lower, permutation_t, lower=True, unit_diagonal=True),
        lower=False)


def invertible_conv1x1(*, event_ndims: int = 3) -> Bijector:
    """The LU-parametrised invertible 1x1 convolution over the last axis (channels).

    Args:
      event_ndims: event axes (>= 1): 3 for ``(H, W, C)`` images (the log-det counts the
        ``H W`` positions), 1 for vectors (then it is a plain LU linear map).
    """
    if event_ndims < 1:
        raise ValueError(f"invertible_conv1x1: event_ndims must be >= 1, got {event_ndims}.")

    def init(key, x):
        check_event_rank(x, event_ndims, "invertible_conv1x1")
        c = x.shape[-1]
        rotation = jnp.linalg.qr(jax.random.normal(key, (c, c), x.dtype))[0]
        p, lower, upper = jax.scipy.linalg.lu(rotation)
        diagonal = jnp.diagonal(upper)
        params = {"lower": jnp.tril(lower, -1), "upper": jnp.triu(upper, 1),
                  "log_scale": jnp.log(jnp.abs(diagonal))}
        state = Conv1x1State(jnp.argmax(p, axis=-1).astype(jnp.int32), jnp.sign(diagonal))
        return params, state

    def _apply(params, state, x, matrix_fn, sign, name):
        check_event_rank(x, event_ndims, name)
        c = state.sign.shape[-1]
        if x.shape[-1] != c:
            raise ValueError(f"{name}: expected {c} channels on the last axis (the size init "
                             f"saw), got input of shape {tuple(x.shape)}.")
        matrix = matrix_fn(params, state)
        log_det = sign * sum_broadcast_event(params["log_scale"], x.shape, event_ndims)
        return x @ matrix.T.astype(x.dtype), log_det.astype(x.dtype), state

    def forward(params, state, x, *, cond=None, train=False, key=None):
        del cond, train, key
        return _apply(params, state, x, lu_weight, 1.0, "invertible_conv1x1.forward")

    def inverse(params, state, y, *, cond=None, train=False, key=None):
        del cond, train, key
        return _apply(params, state, y, lu_inverse_weight, -1.0, "invertible_conv1x1.inverse")

    return Bijector(init, forward, inverse, event_ndims)
