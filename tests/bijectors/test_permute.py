"""Permutations: validation messages and the inverse permutation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jflows.bijectors as jb


@pytest.mark.parametrize(
    ("perm", "message"),
    [
        ([0, 0, 2], r"missing \[1\], repeated \[0\]"),
        ([0, 3, 1], r"out of range \[3\]"),
        ([[0, 1]], "1-D sequence of ints"),
        ([0.0, 1.0], "1-D sequence of ints"),
        ([], "non-empty"),
    ],
)
def test_not_a_permutation_is_rejected_with_what_is_wrong(perm, message):
    with pytest.raises(ValueError, match=message):
        jb.permute(perm)


def test_traced_permutation_is_rejected():
    with pytest.raises(ValueError, match="concrete sequence"):
        jax.jit(lambda p: jb.permute(p).forward((), (), jnp.zeros(3))[0])(jnp.arange(3))


def test_permute_semantics_and_axis():
    x = jnp.arange(6.0).reshape(2, 3)
    y, log_det, _ = jb.permute([2, 0, 1]).forward((), (), x)
    np.testing.assert_array_equal(y, x[:, [2, 0, 1]])
    assert log_det.shape == (2,)
    z, log_det, _ = jb.permute([1, 0], axis=-2).forward((), (), x)
    np.testing.assert_array_equal(z, x[::-1])
    assert log_det.shape == ()
    with pytest.raises(ValueError, match="negative int"):
        jb.permute([1, 0], axis=0)


def test_reshape_rejects_different_sizes():
    with pytest.raises(ValueError, match="same number of elements"):
        jb.reshape((2, 2), (5,))
