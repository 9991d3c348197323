"""A jitted chain of ten elementwise jflows bijectors vs the same math in ``jax.numpy``.

The chain (forward direction)::

    scale(1.3) -> shift(0.2) -> leaky_relu(0.5) -> softplus -> log (invert(exp))
      -> tanh -> scale(0.5) -> shift(0.5) -> logit (invert(sigmoid)) -> affine_scalar(-0.1, 2)

on ``x`` of shape (N, 16) with ``event_ndims=1``. Both versions return ``(y, log_det)``;
the hand-written one is the formulas typed out once, as a user would without a library,
and the peer is TensorFlow Probability's JAX substrate (``tfb.Chain`` lists the same
bijectors last-first; TFP has no leaky ReLU bijector, so that one is a ``tfb.Inline``).

    python -m benchmarks.elementwise_chain [--points N]
"""

from __future__ import annotations

import argparse
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from tensorflow_probability.substrates import jax as tfp

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


def tfp_chain():
    tfb = tfp.bijectors
    leaky = tfb.Inline(
        forward_fn=lambda x: jnp.where(x >= 0, x, 0.5 * x),
        inverse_fn=lambda y: jnp.where(y >= 0, y, y / 0.5),
        inverse_log_det_jacobian_fn=lambda y: jnp.where(y >= 0, 0.0, -math.log(0.5)),
        forward_min_event_ndims=0, name="leaky_relu")
    first_to_last = [tfb.Scale(1.3), tfb.Shift(0.2), leaky, tfb.Softplus(),
                     tfb.Invert(tfb.Exp()), tfb.Tanh(), tfb.Scale(0.5), tfb.Shift(0.5),
                     tfb.Invert(tfb.Sigmoid()), tfb.Chain([tfb.Scale(2.0), tfb.Shift(-0.1)][::-1])]
    return tfb.Chain(first_to_last[::-1])


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
    peer = tfp_chain()
    tfp_fwd = jax.jit(lambda v: (peer.forward(v), peer.forward_log_det_jacobian(v, 1)))
    tfp_inv = jax.jit(lambda v: (peer.inverse(v), peer.inverse_log_det_jacobian(v, 1)))

    y, log_det = ours_fwd(x)
    y_hand, log_det_hand = hand_fwd(x)
    np.testing.assert_allclose(y, y_hand, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(log_det, log_det_hand, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(ours_inv(y)[1], hand_inv(y)[1], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(tfp_fwd(x)[0], y, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(tfp_fwd(x)[1], log_det, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(tfp_inv(y)[1], hand_inv(y)[1], rtol=1e-4, atol=1e-3)

    results = {}
    for name, fns, arg in (("forward", (ours_fwd, hand_fwd, tfp_fwd), x),
                           ("inverse", (ours_inv, hand_inv, tfp_inv), y)):
        for clock_name, clock in (("wall", time.perf_counter), ("cpu", time.process_time)):
            # Interleave to share the machine's background load fairly among the three.
            times = [[], [], []]
            for _ in range(5):
                for fn, samples in zip(fns, times, strict=True):
                    samples.append(median_seconds(lambda f=fn, a=arg: f(a), repeats=5,
                                                  clock=clock))
            results[f"{name} ({clock_name})"] = tuple(min(t) for t in times)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=1_000_000)
    args = parser.parse_args()
    print(machine_description())
    print(f"{args.points} points x 16 dims, float32, jitted; best of 5 medians of 5 runs, "
          "wall time and this process's CPU time")
    print(f"{'direction (clock)':18s} {'jflows ms':>10s} {'by hand ms':>11s} {'TFP ms':>8s} "
          f"{'jflows/hand':>12s} {'TFP/jflows':>11s}")
    for name, (ours, hand, peer) in run(args.points).items():
        print(f"{name:18s} {1e3 * ours:10.2f} {1e3 * hand:11.2f} {1e3 * peer:8.2f} "
              f"{ours / hand:12.3f} {peer / ours:11.3f}")


if __name__ == "__main__":
    main()
