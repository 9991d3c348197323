"""Jacobian-trace estimators for continuous normalizing flows.

A CNF ``dz/dt = f(t, z)`` changes the log-density by the trace of the Jacobian
(Chen et al. 2018, "Neural ordinary differential equations", theorem 1)::

    d log|det dz(t)/dz(t0)| / dt = tr(df/dz(t, z(t)))

An estimator evaluates ``f`` once and returns, per event,

* ``f(z)``,
* ``tr(J)`` (exactly or as an unbiased estimate), and
* ``||J||_F^2`` (exactly or as an unbiased estimate), used by the Jacobian-Frobenius
  regulariser of RNODE (:mod:`jflows.ode.regularization`).

``f`` maps a batch of events to a batch of events and must act on each event
independently (no coupling across the batch, e.g. no batch norm inside the vector
field): the estimators push one tangent per event through the whole batch at once.

* :func:`exact_trace`: ``tr(J) = sum_i e_i^T J e_i`` with one forward-mode product
  ``J e_i`` per event dimension (``jax.linearize`` once, then a ``vmap`` over the basis),
  and ``||J||_F^2 = sum_i ||J e_i||^2``. Cost grows with the event size: use it for
  low-dimensional data and for low-variance evaluation.
* :func:`hutchinson_trace`: ``tr(J) ~ eps^T J eps`` with ``E[eps eps^T] = I``
  (Hutchinson 1989; FFJORD, Grathwohl et al. 2019, eq. 7), Gaussian or Rademacher ``eps``,
  and ``||J||_F^2 ~ ||J eps||^2`` (RNODE, Finlay et al. 2020, eq. 5 uses the same noise).
  One forward-mode product ``J eps`` per evaluation, whatever the dimension. The noise is
  drawn once per solve and held fixed along the trajectory, which keeps the ODE smooth
  for the adaptive solver (as in FFJORD).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jflows.bijectors.base import sum_rightmost

Array = jax.Array


class TraceEstimator(NamedTuple):
    """How the Jacobian trace is obtained: :func:`exact_trace` or :func:`hutchinson_trace`.

    Attributes:
      name: for messages.
      sample_noise: ``(key, shape, dtype) -> noise`` for stochastic estimators, ``None``
        for exact ones (which then need no key).
      evaluate: ``(fn, z, noise, event_ndims) -> (f, trace, frobenius_sq)`` where ``fn``
        maps the batch ``z`` to ``f(z)`` and ``trace``/``frobenius_sq`` have the batch shape.
    """

    name: str
    sample_noise: Callable[..., Array] | None
    evaluate: Callable[..., tuple[Array, Array, Array]]

    @property
    def needs_key(self) -> bool:
        return self.sample_noise is not None


def _exact(fn, z, noise, event_ndims):
    del noise
    batch_shape = z.shape[: z.ndim - event_ndims]
    event_shape = z.shape[z.ndim - event_ndims :]
    size = math.prod(event_shape)
    f, jvp = jax.linearize(fn, z)
    basis = jnp.eye(size, dtype=z.dtype).reshape((size,) + event_shape)
    # columns[i] = J e_i for every event of the batch at once.
    columns = jax.vmap(lambda e: jvp(jnp.broadcast_to(e, z.shape)))(basis)
    columns = columns.reshape((size,) + batch_shape + (size,))
    diagonal = jnp.diagonal(columns, axis1=0, axis2=-1)  # batch_shape + (size,)
    trace = jnp.sum(diagonal, axis=-1)
    frobenius_sq = jnp.sum(jnp.square(columns), axis=(0, columns.ndim - 1))
    return f, trace, frobenius_sq


def exact_trace() -> TraceEstimator:
    """The exact trace, one Jacobian-vector product per event dimension."""
    return TraceEstimator("exact", None, _exact)


def _hutchinson(fn, z, noise, event_ndims):
    f, j_noise = jax.jvp(fn, (z,), (noise,))
    trace = sum_rightmost(noise * j_noise, event_ndims)
    frobenius_sq = sum_rightmost(jnp.square(j_noise), event_ndims)
    return f, trace, frobenius_sq


def _rademacher(key, shape, dtype):
    return jax.random.rademacher(key, shape, dtype)


def _gaussian(key, shape, dtype):
    return jax.random.normal(key, shape, dtype)


_NOISE = {"gaussian": _gaussian, "rademacher": _rademacher}


def hutchinson_trace(noise: str = "gaussian") -> TraceEstimator:
    """Hutchinson's estimator ``eps^T J eps`` with ``noise`` in ``{'gaussian', 'rademacher'}``.

    Gaussian is FFJORD's default. With ``S = (J + J^T) / 2`` the estimate's variance is
    ``2 ||S||_F^2`` for Gaussian and ``2 (||S||_F^2 - sum_i S_ii^2)`` for Rademacher noise,
    so Rademacher is never worse.
    """
    if noise not in _NOISE:
        raise ValueError(
            f"hutchinson_trace: noise must be one of {sorted(_NOISE)}, got {noise!r}."
        )
    return TraceEstimator(f"hutchinson({noise})", _NOISE[noise], _hutchinson)
