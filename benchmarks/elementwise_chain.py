"""A jitted chain of ten elementwise jflows bijectors vs the same math in ``jax.numpy``.

The chain (forward direction)::

    scale(1.3) -> shift(0.2) -> leaky_relu(0.5) -> softplus -> log (invert(exp))
      -> tanh -> scale(0.5) -> shift(0.5) -> logit (invert(sigmoid)) -> affine_scalar(-0.1, 2)

on ``x`` of shape (N, 16) with ``event_ndims=1``. Both versions return ``(y, log_det)``;
the hand-written one is the formulas typed out once, as a user would without a library.

    python -m benchmarks.elementwise_chain [--points N]
"""

from __future__ import annotations

import argparse
import math

import jax
import jax.numpy as jnp
import numpy as np

import jflows.bijectors as jb
from benchmarks.timing import machine_description, median_seconds


def jflows_chain():
    return jb.chain(
        jb.scale(1.3, event_ndims=1), jb.shift(0.2, event_ndims=1),
        jb.leaky_relu(0.5, event_ndims=1), jb.softplus(event_ndims=1),
        jb.invert(jb.exp(event_ndims=1)), jb.tanh(event_ndims=1),
        jb.scale(0.5, event_ndims=1), jb.shift(0.5, event_ndims=1),
        jb.invert(jb.sigmoid(event_ndims=1)), jb.affine_scalar(-0.1, 2.0, event_ndims=1),
    )


def by_hand_forward(x):
    """The same ten maps and their log|derivative|, summed over the last axis."""
    log_det = jnp.log(1.3) * x.shape[-1]
    x = 1.3 * x + 0.2
    log_det += jnp.sum(jnp.where(x >= 0, 0.0, jnp.log(0.5)), -1)
    x = jnp.where(x >= 0, x, 0.5 * x)
    log_det += jnp.sum(-jax.nn.softplus(-x), -1)
    x = jax.nn.softplus(x)
    log_det += jnp.sum(-jnp.log(x), -1)
    x = jnp.log(x)
    log_det += jnp.sum(2.0 * (math.log(2.0) - x - jax.nn.softplus(-2.0 * x)), -1)
    x = jnp.tanh(x)
    log_det += jnp.log(0.5) * x.shape[-1]
    x = 0.5 * x + 0.5
    log_det += jnp.sum(-jnp.log(x) - jnp.log1p(-x), -1)
    x = jnp.log(x) - jnp.log1p(-x)
    log_det += jnp.log(2.0) * x.shape[-1]
    return 2.0 * x - 0.1, log_det


def by_hand_inverse(y):
    """Inverse of :func:`by_hand_forward` and its log-det."""
    y = (y + 0.1) / 2.0
    log_det = -jnp.log(2.0) * y.shape[-1]
    s = jax.nn.sigmoid(y)
    log_det += jnp.sum(-jax.nn.softplus(-y) - jax.nn.softplus(y), -1)
    y = (s - 0.5) / 0.5
    log_det -= jnp.log(0.5) * y.shape[-1]
    log_det += jnp.sum(-jnp.log1p(-jnp.square(y)), -1)
    y = jnp.arctanh(y)
    log_det += jnp.sum(y, -1)
    y = jnp.exp(y)
    z = y + jnp.log(-jnp.expm1(-y))
    log_det += jnp.sum(-jnp.log(-jnp.expm1(-y)), -1)
    log_det += jnp.sum(jnp.where(z >= 0, 0.0, -jnp.log(0.5)), -1)
    z = jnp.where(z >= 0, z, z / 0.5)
    log_det -= jnp.log(1.3) * z.shape[-1]
    return (z - 0.2) / 1.3, log_det


def run(num_points: int) -> dict:
    chain = jflows_chain()
    params, state = chain.init(jax.random.key(0), jnp.zeros((16,)))
    x = 0.5 * jax.random.normal(jax.random.key(1), (num_points, 16))
    ours_fwd = jax.jit(lambda v: chain.forward(params, state, v)[:2])
    ours_inv = jax.jit(lambda v: chain.inverse(params, state, v)[:2])
    hand_fwd, hand_inv = jax.jit(by_hand_forward), jax.jit(by_hand_inverse)

    y, log_det = ours_fwd(x)
    y_hand, log_det_hand = hand_fwd(x)
    np.testing.assert_allclose(y, y_hand, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(log_det, log_det_hand, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(ours_inv(y)[1], hand_inv(y)[1], rtol=1e-4, atol=1e-3)

    results = {}
    for name, ours, hand, arg in (("forward", ours_fwd, hand_fwd, x),
                                  ("inverse", ours_inv, hand_inv, y)):
        # Interleave to share the machine's background load fairly between the two.
        t_ours, t_hand = [], []
        for _ in range(5):
            t_ours.append(median_seconds(lambda f=ours, a=arg: f(a), repeats=5))
            t_hand.append(median_seconds(lambda f=hand, a=arg: f(a), repeats=5))
        results[name] = (min(t_ours), min(t_hand))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=1_000_000)
    args = parser.parse_args()
    print(machine_description())
    print(f"{args.points} points x 16 dims, float32, jitted; best of 5 medians of 5 runs")
    print(f"{'direction':10s} {'jflows ms':>10s} {'by hand ms':>11s} {'ratio':>7s}")
    for name, (ours, hand) in run(args.points).items():
        print(f"{name:10s} {1e3 * ours:10.2f} {1e3 * hand:11.2f} {ours / hand:7.3f}")


if __name__ == "__main__":
    main()
