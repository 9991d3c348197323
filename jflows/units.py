"""Unit conversions of log-likelihoods (imports only NumPy; works on NumPy and JAX arrays).

A model of ``D``-dimensional discrete data (8-bit images: ``D = H W C``) that reports
``log p(x)`` in nats per example is scored in bits per dimension::

    bits/dim = -log p(x) / (D ln 2)

No dequantization offset is added here: pass the log-probability of the data as the
model defines it (PixelCNN++: the exact discrete log-probability; a flow on dequantized
pixels: the density on ``[0, 256)^D``, see ``jflows.data.images``).
"""

from __future__ import annotations

import numpy as np


def bits_per_dim(log_prob, num_dims: int):
    """``-log_prob / (num_dims ln 2)``: nats per example to bits per dimension."""
    return -log_prob / (num_dims * np.log(2.0))
