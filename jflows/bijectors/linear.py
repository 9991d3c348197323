"""Affine maps with a lower-triangular scale plus a low-rank update.

``y = (L + U U^T) x + b`` with ``L`` lower-triangular (``D x D``), ``U`` of shape
``D x r`` and ``b`` a shift. The log-det comes from the matrix determinant lemma::

    log|det(L + U U^T)| = sum_i log|L_ii| + log|det(I_r + U^T L^{-1} U)|

and the inverse from the Woodbury identity, using only triangular solves and one
``r x r`` solve::

    (L + U U^T)^{-1} z = w - L^{-1} U (I_r + U^T L^{-1} U)^{-1} U^T w,   w = L^{-1} z.

This is the function and log-det of TFP's
``tfb.Shift(b)(tfb.ScaleMatvecLinearOperator(tf.linalg.LinearOperatorLowRankUpdate(
tf.linalg.LinearOperatorLowerTriangular(tfp.math.fill_triangular(v)), u=U)))``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from jflows.bijectors.base import EMPTY, Bijector, batch_shape_of, check_event_rank


@functools.cache
def _fill_triangular_indices(n: int) -> np.ndarray:
    """Index map of TFP's ``fill_triangular(lower)``: ``L[i, j] = v[idx[i, j]]`` for ``j <= i``.

    TFP fills ``concat(v[n:], reverse(v))`` row-major into an ``n x n`` matrix and keeps
    the lower triangle, e.g. ``v = [1..6]`` gives ``[[4, 0, 0], [6, 5, 0], [3, 2, 1]]``.
    """
    m = n * (n + 1) // 2
    # int32: JAX mis-caches int64 NumPy indices traced with and without jax.enable_x64.
    return np.concatenate([np.arange(n, m), np.arange(m)[::-1]]).reshape(n, n).astype(np.int32)


def triangular_size(m: int) -> int:
    """``n`` such that an ``n x n`` triangle holds ``m = n (n + 1) / 2`` entries."""
    n = int(round((np.sqrt(8 * m + 1) - 1) / 2))
    if n * (n + 1) // 2 != m:
        raise ValueError(f"fill_triangular: a vector of length {m} does not fill a triangle.")
    return n


def fill_triangular(v: jax.Array) -> jax.Array:
    """Lower-triangular ``(..., n, n)`` matrix from ``(..., n (n + 1) / 2)`` entries (TFP order)."""
    n = triangular_size(v.shape[-1])
    idx = _fill_triangular_indices(n)
    return jnp.where(np.tril(np.ones((n, n), bool)), v[..., idx], jnp.zeros((), v.dtype))


def fill_triangular_inverse(matrix: jax.Array) -> jax.Array:
    """The vector ``v`` with ``fill_triangular(v) == tril(matrix)``."""
    n = matrix.shape[-1]
    idx = _fill_triangular_indices(n)
    rows, cols = np.tril_indices(n)
    order = np.argsort(idx[rows, cols])
    return matrix[..., rows[order].astype(np.int32), cols[order].astype(np.int32)]


_DIAG_SHIFT = 1e-5  # as TFP's FillScaleTriL default


def _scale_tril(p, positive_diagonal: bool):
    if "scale_tril" in p:
        return p["scale_tril"]
    tril = fill_triangular(p["tril"])
    if positive_diagonal:
        diag = jnp.diagonal(tril, axis1=-2, axis2=-1)
        tril = tril + jnp.diag(jax.nn.softplus(diag) + _DIAG_SHIFT - diag)
    return tril


def affine_tril_lowrank(
    *,
    rank: int = 0,
    scale_tril=None,
    update=None,
    shift=None,
    positive_diagonal: bool = False,
    init_update_scale: float = 0.1,
) -> Bijector:
    """``y = (L + U U^T) x + b`` over the last axis (``event_ndims = 1``).

    Each of ``scale_tril`` (a ``D x D`` lower-triangular matrix), ``update`` (``U``,
    ``D x r``) and ``shift`` (``b``, ``D``) given here is a fixed constant; each left as
    ``None`` is learnable and created by ``init`` from the input's size ``D``:

    * ``'tril'``: the unconstrained ``D (D + 1) / 2`` vector of TFP's ``fill_triangular``,
      starting at the identity. With ``positive_diagonal=True`` the diagonal is
      ``softplus(v) + 1e-5`` (TFP's ``FillScaleTriL``), which keeps ``L`` invertible under
      any update; otherwise the raw vector is used (TFP's plain ``fill_triangular``).
    * ``'update'``: ``D x rank`` (``rank`` ignored when ``update`` is given), drawn from
      ``N(0, init_update_scale^2)`` -- not zero, because ``U = 0`` is a saddle point where
      the gradient with respect to ``U`` vanishes.
    * ``'shift'``: zeros. Pass ``shift=0.0`` for a linear map without a shift.
    """
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 0:
        raise ValueError(f"affine_tril_lowrank: rank must be an int >= 0 (0: no low-rank "
                         f"update), got {rank!r}.")
    constants = {}
    if scale_tril is not None:
        constants["scale_tril"] = jnp.asarray(scale_tril)
    if update is not None:
        constants["update"] = jnp.asarray(update)
        rank = constants["update"].shape[-1]
    if shift is not None:
        constants["shift"] = jnp.asarray(shift)

    def init(key, x):
        check_event_rank(x, 1, "affine_tril_lowrank")
        d = x.shape[-1]
        params = {}
        if scale_tril is None:
            eye = jnp.eye(d, dtype=x.dtype)
            if positive_diagonal:
                eye = eye * jnp.log(jnp.expm1(1.0 - _DIAG_SHIFT)).astype(x.dtype)
            params["tril"] = fill_triangular_inverse(eye)
        if update is None and rank > 0:
            params["update"] = init_update_scale * jax.random.normal(key, (d, rank), x.dtype)
        if shift is None:
            params["shift"] = jnp.zeros((d,), x.dtype)
        return params, EMPTY

    def _operands(params, x):
        check_event_rank(x, 1, "affine_tril_lowrank")
        p = {k: v.astype(x.dtype) for k, v in constants.items()}
        p.update(params)
        tril = _scale_tril(p, positive_diagonal)
        d = tril.shape[-1]
        if x.shape[-1] != d:
            raise ValueError(
                f"affine_tril_lowrank: expected inputs with last axis of size {d} (the size "
                f"of the scale matrix made by init/given), got shape {tuple(x.shape)}."
            )
        u = p.get("update")
        if u is not None and u.shape[-1] == 0:
            u = None
        return tril, u, p.get("shift", jnp.zeros((d,), x.dtype))

    def _capacitance(tril, u):
        """``L^{-1} U`` and the ``r x r`` capacitance ``I_r + U^T L^{-1} U``."""
        l_inv_u = solve_triangular(tril, u, lower=True)
        return l_inv_u, jnp.eye(u.shape[-1], dtype=u.dtype) + u.T @ l_inv_u

    def _log_det(tril, capacitance):
        log_det = jnp.sum(jnp.log(jnp.abs(jnp.diagonal(tril))))
        if capacitance is not None:
            log_det = log_det + jnp.linalg.slogdet(capacitance)[1]
        return log_det

    def forward(params, state, x, *, cond=None, train=False, key=None):
        del cond, train, key
        tril, u, b = _operands(params, x)
        y = x @ tril.T + b
        capacitance = None
        if u is not None:
            y = y + (x @ u) @ u.T
            capacitance = _capacitance(tril, u)[1]
        log_det = jnp.broadcast_to(_log_det(tril, capacitance), batch_shape_of(x, 1))
        return y, log_det, state

    def inverse(params, state, y, *, cond=None, train=False, key=None):
        del cond, train, key
        tril, u, b = _operands(params, y)
        batch_shape = batch_shape_of(y, 1)
        z = (y - b).reshape((-1, y.shape[-1])).T  # (D, N)
        w = solve_triangular(tril, z, lower=True)
        capacitance = None
        if u is not None:
            l_inv_u, capacitance = _capacitance(tril, u)
            w = w - l_inv_u @ jnp.linalg.solve(capacitance, u.T @ w)
        x = w.T.reshape(y.shape)
        log_det = jnp.broadcast_to(-_log_det(tril, capacitance), batch_shape)
        return x, log_det, state

    return Bijector(init, forward, inverse, 1)
