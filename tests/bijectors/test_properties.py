"""Property-based checks against dense NumPy float64 linear algebra."""

import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import jflows.bijectors as jb


@settings(max_examples=15, deadline=None)
@given(d=st.integers(1, 6), rank=st.integers(0, 3), seed=st.integers(0, 2**31 - 1))
def test_affine_tril_lowrank_matches_dense_float64(d, rank, seed):
    rng = np.random.default_rng(seed)
    tril = np.tril(rng.normal(size=(d, d)))
    tril[np.diag_indices(d)] = rng.uniform(0.5, 2.0, d) * rng.choice([-1, 1], d)
    update = 0.7 * rng.normal(size=(d, rank))
    shift = rng.normal(size=d)
    x = rng.normal(size=(3, d))
    dense = tril + update @ update.T
    b = jb.affine_tril_lowrank(rank=rank)
    params = {"tril": jb.fill_triangular_inverse(jnp.asarray(tril, jnp.float32)),
              "shift": jnp.asarray(shift, jnp.float32)}
    if rank:
        params["update"] = jnp.asarray(update, jnp.float32)
    y, log_det, _ = b.forward(params, (), jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(y, x @ dense.T + shift, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(log_det, np.full(3, np.linalg.slogdet(dense)[1]), rtol=1e-4,
                               atol=1e-4)
    x_back, inv_log_det, _ = b.inverse(params, (), y)
    cond = np.linalg.cond(dense)
    np.testing.assert_allclose(x_back, x, atol=1e-5 * cond * (1 + np.abs(y).max()))
    np.testing.assert_allclose(inv_log_det, -log_det, rtol=1e-5, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 8), seed=st.integers(0, 2**31 - 1))
def test_fill_triangular_round_trip_and_layout(n, seed):
    v = np.random.default_rng(seed).normal(size=n * (n + 1) // 2).astype(np.float32)
    tril = np.asarray(jb.fill_triangular(jnp.asarray(v)))
    assert np.all(np.triu(tril, 1) == 0)
    assert sorted(tril[np.tril_indices(n)].tolist()) == sorted(v.tolist())
    np.testing.assert_array_equal(jb.fill_triangular_inverse(jnp.asarray(tril)), v)
