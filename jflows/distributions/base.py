"""Base distributions as pure functions, built on TFP's JAX substrate.

A :class:`Distribution` is a named tuple of functions over an explicit params pytree::

    init(key, dtype=None)                          -> params
    log_prob(params, x, *, cond=None)              -> log-density, shape x.shape[:-len(event_shape)]
    sample(params, key, sample_shape=(), *, cond=None) -> sample_shape + event_shape
    cdf(params, x)                                 -> CDF (scalar events only, else None)

The densities come from ``tfp.substrates.jax.distributions`` (``Independent`` over the
event axes), not re-derived here. Each parameter given to a constructor is a fixed
constant; each left as ``None`` is learnable, created by ``init`` (positive ones in log
space). ``cond`` is accepted by every distribution so that a conditional flow can pass it
through; the distributions in this module do not depend on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import tensorflow_probability.substrates.jax as tfp

from jflows.bijectors.base import check_event_shape

tfd = tfp.distributions


class Distribution(NamedTuple):
    """A distribution as pure functions; see the module docstring for the contract."""

    init: Callable[..., Any]
    log_prob: Callable[..., jax.Array]
    sample: Callable[..., jax.Array]
    event_shape: tuple[int, ...]
    cdf: Callable[..., jax.Array] | None = None


def default_float_dtype():
    """float64 when ``jax_enable_x64`` is on, else float32."""
    return jnp.result_type(float)


def _from_tfp(
    name: str,
    make: Callable[[Mapping[str, jax.Array]], Any],
    event_shape,
    constants: Mapping[str, Any],
    learnable: Mapping[str, float],
) -> Distribution:
    """A :class:`Distribution` whose elementwise law is ``make(params)`` (a TFP distribution).

    ``learnable`` maps parameter names to their initial value (filled to ``event_shape``).
    """
    event_shape = tuple(int(d) for d in event_shape)
    event_ndims = len(event_shape)

    def init(key, dtype=None):
        del key
        dtype = dtype or default_float_dtype()
        return {k: jnp.full(event_shape, v, dtype) for k, v in learnable.items()}

    def _law(params, dtype):
        p = {k: jnp.broadcast_to(jnp.asarray(v, dtype), event_shape) for k, v in constants.items()}
        p.update({k: v.astype(dtype) for k, v in dict(params or {}).items()})
        return tfd.Independent(make(p), reinterpreted_batch_ndims=event_ndims)

    def _dtype(params):
        leaves = jax.tree_util.tree_leaves(params)
        return leaves[0].dtype if leaves else default_float_dtype()

    def log_prob(params, x, *, cond=None):
        del cond
        check_event_shape(x, event_shape, f"{name}.log_prob", "the distribution's event shape")
        return _law(params, x.dtype).log_prob(x)

    def sample(params, key, sample_shape=(), *, cond=None):
        del cond
        shape = (sample_shape,) if isinstance(sample_shape, int) else tuple(sample_shape)
        return _law(params, _dtype(params)).sample(shape, seed=key)

    def cdf(params, x):
        check_event_shape(x, event_shape, f"{name}.cdf", "the distribution's event shape")
        return _law(params, x.dtype).cdf(x)

    return Distribution(init, log_prob, sample, event_shape, cdf if event_ndims == 0 else None)


def standard_normal(event_shape=()) -> Distribution:
    """``N(0, I)`` over ``event_shape``; no params."""
    return _from_tfp(
        "standard_normal",
        lambda p: tfd.Normal(p["loc"], p["scale"]),
        event_shape,
        {"loc": 0.0, "scale": 1.0},
        {},
    )


def diag_normal(event_shape=(), loc=None, scale=None) -> Distribution:
    """``N(loc, diag(scale^2))``; ``loc``/``scale`` left as ``None`` are learnable.

    Learnable params: ``'loc'`` (initialised at 0) and ``'log_scale'`` (at 0, scale 1).
    """
    constants, learnable = {}, {}
    if loc is None:
        learnable["loc"] = 0.0
    else:
        constants["loc"] = loc
    if scale is None:
        learnable["log_scale"] = 0.0
    else:
        constants["scale"] = scale

    def make(p):
        s = p["scale"] if "scale" in p else jnp.exp(p["log_scale"])
        return tfd.Normal(p["loc"], s)

    return _from_tfp("diag_normal", make, event_shape, constants, learnable)


def uniform(event_shape=(), low=0.0, high=1.0) -> Distribution:
    """Uniform on ``[low, high)`` in every coordinate; no params."""
    if not math.isfinite(low) or not math.isfinite(high) or not low < high:
        raise ValueError(f"uniform: need finite low < high, got low={low}, high={high}.")
    return _from_tfp(
        "uniform",
        lambda p: tfd.Uniform(p["low"], p["high"]),
        event_shape,
        {"low": low, "high": high},
        {},
    )


def logistic(event_shape=(), loc=0.0, scale=1.0) -> Distribution:
    """Logistic with location ``loc`` and scale ``scale`` in every coordinate; no params."""
    if not scale > 0:
        raise ValueError(f"logistic: scale must be > 0, got {scale}.")
    return _from_tfp(
        "logistic",
        lambda p: tfd.Logistic(p["loc"], p["scale"]),
        event_shape,
        {"loc": loc, "scale": scale},
        {},
    )
