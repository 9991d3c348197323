"""Bridges between jflows and FlowJAX, both ways (needs ``flowjax``, ``equinox``,
``paramax``).

* :func:`from_bijection` / :func:`from_distribution`: a FlowJAX bijection or distribution
  as a jflows bijector / density model. Its params are the FlowJAX object's trainable
  arrays, partitioned as FlowJAX's own ``fit`` does:
  ``eqx.partition(obj, eqx.is_inexact_array, is_leaf=is_non_trainable)`` (arrays wrapped
  in ``paramax.NonTrainable`` stay fixed); ``eqx.combine`` rebuilds the object. FlowJAX
  acts on one event (``shape``) and vectorises nothing in a bijection, so leading batch
  axes are mapped with ``jax.vmap``; a conditional object (``cond_shape``) becomes a
  conditional jflows model (``cond`` broadcast with the data's batch shape).
* :func:`to_bijection`: a jflows bijector with its params/state as a FlowJAX
  ``AbstractBijection`` (an equinox module whose params and state are its array fields, so
  FlowJAX's ``fit`` and ``eqx.partition`` train them).

Same direction on both sides: FlowJAX's ``transform`` is jflows' ``forward`` (base ->
data, the sampling direction).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import paramax
from flowjax.bijections import AbstractBijection
from flowjax.distributions import AbstractDistribution

from jflows.bijectors.base import Bijector
from jflows.interop.common import (
    BoundBijector,
    Static,
    check_jflows_bijector,
    peer_bijector,
    peer_distribution,
)


def _is_non_trainable(leaf) -> bool:
    return isinstance(leaf, paramax.NonTrainable)


def _partition(obj, kind, name: str):
    """``(make, params)`` with FlowJAX's own partition of trainable arrays."""
    if not isinstance(obj, kind):
        raise TypeError(f"{name}: expected a flowjax {kind.__name__}, got "
                        f"{type(obj).__name__}.")
    params, static = eqx.partition(obj, eqx.is_inexact_array, is_leaf=_is_non_trainable)
    return (lambda p: eqx.combine(p, static)), params


def _batched(fn, event_ndims: int, cond_shape):
    """``fn(value, condition)`` on one event, mapped over the leading batch axes of
    ``value`` (and ``cond``, broadcast to the same batch shape)."""

    def call(value, cond):
        batch = value.shape[: value.ndim - event_ndims]
        if cond is not None:
            cond_batch = cond.shape[: cond.ndim - len(cond_shape)]
            batch = jnp.broadcast_shapes(batch, cond_batch)
            cond = jnp.broadcast_to(cond, batch + tuple(cond_shape))
        value = jnp.broadcast_to(value, batch + value.shape[value.ndim - event_ndims:])
        mapped = fn
        for _ in batch:
            mapped = jax.vmap(mapped, in_axes=(0, None if cond is None else 0))
        return mapped(value, cond)

    return call


def from_bijection(bijection) -> Bijector:
    """A FlowJAX bijection as a jflows :class:`~jflows.bijectors.Bijector`
    (``event_ndims = len(bijection.shape)``, ``cond_shape = bijection.cond_shape``)."""
    name = "interop.flowjax.from_bijection"
    make, params = _partition(bijection, AbstractBijection, name)
    ndims = len(bijection.shape)
    cond_shape = bijection.cond_shape

    def mapped(method):
        def call(b, value, cond):
            return _batched(getattr(b, method), ndims, cond_shape)(value, cond)

        return call

    return peer_bijector(name, make, params, event_ndims=ndims, event_ndims_out=ndims,
                         forward_and_log_det=mapped("transform_and_log_det"),
                         inverse_and_log_det=mapped("inverse_and_log_det"),
                         cond_shape=None if cond_shape is None else tuple(cond_shape))


def from_distribution(distribution):
    """A FlowJAX distribution (e.g. a flow from ``flowjax.flows``) as a jflows
    :class:`~jflows.distributions.Distribution`, with ``cond_shape`` its own."""
    name = "interop.flowjax.from_distribution"
    make, params = _partition(distribution, AbstractDistribution, name)
    cond_shape = distribution.cond_shape

    def sample_and_log_prob(d, key, shape, cond):
        if cond is not None:  # jflows: sample_shape broadcast with cond's batch shape
            cond_batch = cond.shape[: cond.ndim - len(cond_shape)]
            shape = tuple(jnp.broadcast_shapes(shape, cond_batch))
            cond = jnp.broadcast_to(cond, shape + tuple(cond_shape))
            single = lambda k, c: d.sample_and_log_prob(k, condition=c)  # noqa: E731
            keys = jax.random.split(key, shape)
            for _ in shape:
                single = jax.vmap(single)
            return single(keys, cond)
        return d.sample_and_log_prob(key, shape)

    return peer_distribution(
        name, make, params, event_shape=distribution.shape,
        log_prob=lambda d, x, cond: d.log_prob(x, cond),
        sample_and_log_prob=sample_and_log_prob,
        cond_shape=None if cond_shape is None else tuple(cond_shape))


class JflowsBijection(AbstractBijection):
    """A jflows bijector as a FlowJAX bijection (made by :func:`to_bijection`).

    ``params`` and ``state`` are equinox fields (trained by FlowJAX); the jflows bijector
    is static. FlowJAX calls it on one event (and ``condition``), as its contract says;
    the log-det of a bijector with fewer event axes than ``shape`` is summed over the
    rest (the Jacobian of the event is block-diagonal).
    """

    bijector: Static = eqx.field(static=True)  # the jflows Bijector (not a pytree)
    params: Any
    state: Any
    shape: tuple[int, ...] = eqx.field(static=True)
    cond_shape: tuple[int, ...] | None = eqx.field(static=True)
    def _bound(self, condition):
        return BoundBijector(self.bijector.value, self.params, self.state, condition, None)

    def transform_and_log_det(self, x, condition=None):
        y, log_det = self._bound(condition).forward_and_log_det(x)
        return y, jnp.sum(log_det)  # one event: summed over axes left to the bijector

    def inverse_and_log_det(self, y, condition=None):
        x, log_det = self._bound(condition).inverse_and_log_det(y)
        return x, jnp.sum(log_det)


def to_bijection(bijector, params, state=(), *, shape) -> JflowsBijection:
    """``bijector`` (a jflows Bijector, shape-preserving) with its params/state as a FlowJAX
    bijection on events of ``shape``; a conditional bijector keeps its ``cond_shape``
    (FlowJAX's ``condition``)."""
    name = "interop.flowjax.to_bijection"
    check_jflows_bijector(bijector, name)
    shape = tuple(int(n) for n in shape)
    if bijector.event_ndims_out is not None or bijector.event_ndims > len(shape):
        raise ValueError(f"{name}: expected a shape-preserving bijector with event_ndims <= "
                         f"{len(shape)} (the rank of shape={shape}), got event_ndims="
                         f"{bijector.event_ndims}, event_ndims_out="
                         f"{bijector.event_ndims_out}.")
    return JflowsBijection(Static(bijector), params, state, shape, bijector.cond_shape)
