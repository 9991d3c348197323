"""experiments.chunked.map_in_chunks: chunked evaluation equals one call, compiled once."""

import jax.numpy as jnp
import numpy as np
import pytest

from experiments.chunked import map_in_chunks


def test_chunks_with_a_padded_last_one_equal_one_call_and_compile_once():
    traced = []

    def fn(scale, x, label):
        traced.append(x.shape)
        return scale * jnp.sum(x, axis=1) + label

    x = np.arange(23 * 2, dtype=np.float32).reshape(23, 2)
    labels = np.arange(23)
    out = map_in_chunks(fn, (2.0,), (x, labels), chunk_size=5)
    np.testing.assert_allclose(out, 2.0 * x.sum(1) + labels)
    assert traced == [(5, 2)]  # the last chunk (3 rows) was padded, not recompiled
    np.testing.assert_allclose(map_in_chunks(fn, (1.0,), (x[:3], labels[:3]), 10),
                               x[:3].sum(1) + labels[:3])
    with pytest.raises(ValueError, match="chunk_size"):
        map_in_chunks(fn, (1.0,), (x, labels), 0)
