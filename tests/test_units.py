"""jflows.units: nats per example -> bits per dimension, against closed forms."""

import jax.numpy as jnp
import numpy as np

from jflows import units


def test_bits_per_dim_closed_forms():
    # D uniform bits: log p = -D ln 2 nats is exactly 1 bit per dimension.
    np.testing.assert_allclose(units.bits_per_dim(-10 * np.log(2.0), 10), 1.0)
    # 8-bit images under the uniform law over 256 values: 8 bits/dim, for any D.
    for dims in (3, 784):
        log_p = jnp.full((2,), -dims * np.log(256.0))
        np.testing.assert_allclose(units.bits_per_dim(log_p, dims), 8.0, rtol=1e-6)
    assert isinstance(units.bits_per_dim(np.array([-1.0]), 2), np.ndarray)  # NumPy in, out
