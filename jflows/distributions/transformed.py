"""A base distribution pushed through a bijector: the normalizing flow density.

For ``y = f(x)``, ``x ~ base``::

    log p(y) = log p_base(f^{-1}(y)) + log|det d f^{-1} / dy|

(one ``inverse`` call: the density direction), and sampling draws ``x`` from the base and
runs ``forward``. Params are ``{'base': ..., 'bijector': ...}`` and so is the state (the
bijector's holds e.g. batch-norm statistics).

**Event ranks are reconciled once, when the model is built** (TFP's rule). The bijector
consumes ``k = bijector.event_ndims`` trailing axes of a base event of rank
``r = len(base.event_shape)``:

* ``k == r``: the bijector's log-det has the batch shape;
* ``k < r`` (e.g. an elementwise bijector, ``k = 0``, over a vector or image base): the
  remaining ``r - k`` event axes are independent copies for the bijector, whose Jacobian
  on the whole event is block-diagonal, so its log-det is summed over them::

      log|det J_f(x)| = sum_{i over the r - k leading event axes} log|det J_f(x_i)|

* ``k > r``: refused by :func:`transformed`, naming both ranks.

A shape-changing bijector (``reshape``) gives the model the event shape of ``forward``'s
output, found with :func:`jax.eval_shape` at build time.

``cdf`` (scalar base, elementwise bijector) is ``F_base(f^{-1}(y))`` where ``f`` is
increasing and ``1 - F_base(f^{-1}(y))`` (the base's survival function, exact in the upper
tail) where it is decreasing, the direction read from the sign of ``d f^{-1}/dy`` at ``y``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jflows.bijectors.base import (
    Bijector,
    call_with_info,
    check_event_shape,
    reduce_to_batch,
    refuse_as_pytree,
)
from jflows.conditioning import (
    CondShape,
    check_cond,
    merge_cond_shapes,
    normalize_cond_shape,
    sample_batch_shape,
)
from jflows.distributions.base import (
    DensityModel,
    abstract_init,
    cast_floating,
    check_data_dtype,
    check_init_dtype,
    check_key,
    check_params_and_state,
    log_prob_from,
)


class TransformedDistribution(NamedTuple):
    """A flow under the :class:`~jflows.distributions.DensityModel` protocol, plus
    ``cdf(params, state, y, *, cond=None)`` and its ``base`` and ``bijector``."""

    init: Callable
    log_prob: Callable
    log_prob_and_state: Callable
    sample: Callable
    sample_and_log_prob: Callable
    event_shape: tuple[int, ...]
    cond_shape: CondShape
    cdf: Callable
    base: DensityModel
    bijector: Bijector


refuse_as_pytree(TransformedDistribution)


def _split(key):
    if key is None:
        return None, None
    return tuple(jax.random.split(key))


def _event_shape_out(base: DensityModel, bijector: Bijector) -> tuple[int, ...]:
    """The model's event shape: the base's, or ``forward``'s output for a reshape."""
    if bijector.event_ndims_out is None:
        return tuple(base.event_shape)
    dtype = jnp.result_type(float)
    event = jax.ShapeDtypeStruct(tuple(base.event_shape), dtype)
    cond = (None if bijector.cond_shape is None
            else jax.ShapeDtypeStruct(bijector.cond_shape, dtype))

    def forward_shape():
        params, state = bijector.init(jax.random.key(0), event)
        return bijector.forward(params, state, jnp.zeros(event.shape, dtype), cond=cond)[0]

    return tuple(jax.eval_shape(forward_shape).shape)


def transformed(base: DensityModel, bijector: Bijector, *,
                cond_shape=None) -> TransformedDistribution:
    """The law of ``bijector.forward(x)``, ``x ~ base`` (TFP: ``tfd.TransformedDistribution``).

    Args:
      base: any :class:`~jflows.distributions.DensityModel`.
      bijector: a :class:`~jflows.bijectors.Bijector` with ``event_ndims`` at most the
        base's event rank (see the module docstring for how ranks are reconciled).
      cond_shape: the per-event shape of ``cond`` when the conditional part is a function
        that does not declare it; otherwise taken from the bijector and the base, which
        must agree.
    """
    if not isinstance(bijector, Bijector):
        raise TypeError(f"transformed: bijector must be a jflows Bijector, got "
                        f"{type(bijector).__name__}.")
    if not isinstance(base, DensityModel):
        raise TypeError(f"transformed: base must be a jflows density model (init, log_prob, "
                        f"log_prob_and_state, sample, ...), got {type(base).__name__}.")
    base_rank = len(base.event_shape)
    if bijector.event_ndims > base_rank:
        raise ValueError(
            f"transformed: the bijector acts on events of rank {bijector.event_ndims} "
            f"(event_ndims={bijector.event_ndims}) but the base distribution's events have "
            f"rank {base_rank} (event_shape={tuple(base.event_shape)}); use a base with at "
            f"least {bijector.event_ndims} event axes.")
    cond_shape = merge_cond_shapes(
        [base.cond_shape, bijector.cond_shape, normalize_cond_shape(cond_shape, "transformed")],
        "transformed")
    event_shape = _event_shape_out(base, bijector)
    base_takes_cond = base.cond_shape is not None

    def init(key, dtype=None):
        """``(params, state)``, every floating leaf in ``dtype`` (default: JAX's float)."""
        check_key(key, "transformed.init")
        dtype = check_init_dtype(dtype, "transformed.init")
        base_key, bijector_key = jax.random.split(key)
        base_params, base_state = base.init(base_key, dtype)
        example = jax.ShapeDtypeStruct(tuple(base.event_shape), dtype)
        bijector_params, bijector_state = bijector.init(bijector_key, example)
        return cast_floating(({"base": base_params, "bijector": bijector_params},
                              {"base": base_state, "bijector": bijector_state}), dtype)

    expected = abstract_init(init)

    def _checked(params, state, y, cond, name):
        check_params_and_state(expected, params, state, name)
        y = check_data_dtype(y, params, state, name)
        check_event_shape(y, event_shape, name, "the model's event shape")
        batch_shape = tuple(y.shape[: y.ndim - len(event_shape)])
        return y, check_cond(cond, cond_shape, batch_shape, name)

    def log_prob_and_state(params, state, y, *, cond=None, train=True, key=None):
        y, cond = _checked(params, state, y, cond, "transformed.log_prob")
        bijector_key, base_key = _split(key)
        x, log_det, bijector_state, bijector_info = call_with_info(
            bijector, "inverse", params["bijector"], state["bijector"], y, cond=cond,
            train=train, key=bijector_key)
        log_det = reduce_to_batch(log_det, x.ndim - base_rank)
        base_log_prob, base_state, base_info = base.log_prob_and_state(
            params["base"], state["base"], x, cond=cond if base_takes_cond else None,
            train=train, key=base_key)
        return (base_log_prob + log_det, {"base": base_state, "bijector": bijector_state},
                {"base": base_info, "bijector": bijector_info})

    def _draw(params, state, key, sample_shape, cond, name):
        check_params_and_state(expected, params, state, name)
        shape, cond = sample_batch_shape(sample_shape, cond, cond_shape, name)
        base_key, bijector_key = jax.random.split(key)
        x, base_log_prob = base.sample_and_log_prob(
            params["base"], state["base"], base_key, shape,
            cond=cond if base_takes_cond else None)
        y, log_det, _ = bijector.forward(params["bijector"], state["bijector"], x, cond=cond,
                                         key=bijector_key)
        return y, base_log_prob - reduce_to_batch(log_det, x.ndim - base_rank)

    def sample(params, state, key, sample_shape=(), *, cond=None):
        return _draw(params, state, key, sample_shape, cond, "transformed.sample")[0]

    def sample_and_log_prob(params, state, key, sample_shape=(), *, cond=None):
        return _draw(params, state, key, sample_shape, cond, "transformed.sample_and_log_prob")

    def cdf(params, state, y, *, cond=None):
        if base.cdf is None or bijector.event_ndims != 0 or bijector.event_ndims_out is not None:
            raise NotImplementedError(
                "transformed.cdf: defined for a scalar base distribution with a cdf "
                "(event_shape=()) and an elementwise, shape-preserving bijector "
                f"(event_ndims=0); got base event_shape {tuple(base.event_shape)} and "
                f"bijector event_ndims {bijector.event_ndims}.")
        y, cond = _checked(params, state, y, cond, "transformed.cdf")

        def to_base(v):
            return bijector.inverse(params["bijector"], state["bijector"], v, cond=cond)[0]

        x, dx_dy = jax.jvp(to_base, (y,), (jnp.ones_like(y),))
        below = base.cdf(params["base"], state["base"], x)
        survival = getattr(base, "survival_function", None)
        above = (1 - below if survival is None
                 else survival(params["base"], state["base"], x))
        return jnp.where(dx_dy >= 0, below, above)

    return TransformedDistribution(init, log_prob_from(log_prob_and_state), log_prob_and_state,
                                   sample, sample_and_log_prob, event_shape, cond_shape, cdf,
                                   base, bijector)
