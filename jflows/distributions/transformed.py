"""A base distribution pushed through a bijector: the normalizing flow density.

For ``y = f(x)``, ``x ~ base``::

    log p(y) = log p_base(f^{-1}(y)) + log|det d f^{-1} / dy|

(one ``inverse`` call: the density direction), and sampling draws ``x`` from the base and
runs ``forward``. Params are ``{'base': ..., 'bijector': ...}``; the state is the
bijector's (e.g. batch-norm statistics), threaded as in the bijector contract.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax

from jflows.bijectors.base import Bijector
from jflows.distributions.base import Distribution, default_float_dtype


class TransformedDistribution(NamedTuple):
    """A flow: ``init``, ``log_prob``, ``sample``, ``sample_and_log_prob``, ``cdf``.

    * ``init(key, dtype=None) -> (params, state)``
    * ``log_prob(params, state, y, *, cond=None, train=False, key=None) -> (log_prob, state)``
      -- the new state carries batch-norm statistics when ``train=True``.
    * ``sample(params, state, key, sample_shape=(), *, cond=None) -> y``
    * ``sample_and_log_prob(params, state, key, sample_shape=(), *, cond=None) -> (y, log_prob)``
    * ``cdf(params, state, y, *, cond=None)``: ``base.cdf(f^{-1}(y))``; defined for a scalar
      base and an elementwise (``event_ndims == 0``) bijector that is *increasing*.
    """

    init: Callable
    log_prob: Callable
    sample: Callable
    sample_and_log_prob: Callable
    cdf: Callable
    base: Distribution
    bijector: Bijector


def transformed(base: Distribution, bijector: Bijector) -> TransformedDistribution:
    """The law of ``bijector.forward(x)``, ``x ~ base`` (TFP: ``tfd.TransformedDistribution``)."""

    def init(key, dtype=None):
        base_key, bijector_key = jax.random.split(key)
        dtype = dtype or default_float_dtype()
        base_params = base.init(base_key, dtype)
        example = jax.ShapeDtypeStruct(base.event_shape, dtype)
        bijector_params, state = bijector.init(bijector_key, example)
        return {"base": base_params, "bijector": bijector_params}, state

    def log_prob(params, state, y, *, cond=None, train=False, key=None):
        x, log_det, state = bijector.inverse(
            params["bijector"], state, y, cond=cond, train=train, key=key
        )
        return base.log_prob(params["base"], x, cond=cond) + log_det, state

    def _draw(params, key, sample_shape, cond):
        base_key, bijector_key = jax.random.split(key)
        return base.sample(params["base"], base_key, sample_shape, cond=cond), bijector_key

    def sample(params, state, key, sample_shape=(), *, cond=None):
        x, bijector_key = _draw(params, key, sample_shape, cond)
        return bijector.forward(params["bijector"], state, x, cond=cond, key=bijector_key)[0]

    def sample_and_log_prob(params, state, key, sample_shape=(), *, cond=None):
        x, bijector_key = _draw(params, key, sample_shape, cond)
        y, log_det, _ = bijector.forward(
            params["bijector"], state, x, cond=cond, key=bijector_key
        )
        return y, base.log_prob(params["base"], x, cond=cond) - log_det

    def cdf(params, state, y, *, cond=None):
        if base.cdf is None or bijector.event_ndims != 0:
            raise NotImplementedError(
                "cdf: defined only for a scalar base distribution (event_shape=()) and an "
                "elementwise bijector (event_ndims=0); got base event_shape "
                f"{base.event_shape} and bijector event_ndims {bijector.event_ndims}."
            )
        x = bijector.inverse(params["bijector"], state, y, cond=cond)[0]
        return base.cdf(params["base"], x)

    return TransformedDistribution(init, log_prob, sample, sample_and_log_prob, cdf, base, bijector)
