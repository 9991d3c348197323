"""Bridges between jflows and distrax, both ways (needs ``distrax``).

* :func:`to_bijector`: a jflows bijector with its params/state (and ``cond``, ``key``)
  as a ``distrax.Bijector`` (``event_ndims_in`` = the bijector's ``event_ndims``,
  ``event_ndims_out`` its output's), usable in ``distrax.Transformed``, ``Chain``,
  ``Inverse``, ...
* :func:`to_distribution`: a jflows density model with its params/state (and ``cond``)
  as a ``distrax.Distribution`` (``log_prob``, ``sample``, ``sample_and_log_prob``,
  ``event_shape``, ``batch_shape`` = ``cond``'s batch shape).
* :func:`from_bijector` / :func:`from_distribution`: a distrax bijector or distribution
  as a jflows bijector / base distribution with fixed arrays, or a function
  ``params -> one`` with params of your choice, which jflows then trains
  (:func:`jflows.interop.common.lift`: distrax objects cache derived arrays, so their
  leaves are not independent parameters).

Both wrappers are distrax ``Jittable`` objects: they pass through ``jax.jit`` with their
params traced, and gradients flow to the params.
"""

from __future__ import annotations

import distrax

from jflows.interop.common import (
    BoundBijector,
    BoundModel,
    Static,
    lift,
    peer_bijector,
    peer_distribution,
)


class JflowsBijector(distrax.Bijector):
    """A bound jflows bijector as a ``distrax.Bijector`` (made by :func:`to_bijector`)."""

    def __init__(self, bound: BoundBijector):
        super().__init__(event_ndims_in=bound.event_ndims_in,
                         event_ndims_out=bound.event_ndims_out)
        self._bijector = Static(bound.bijector)
        self._params, self._state, self._cond, self._key = bound[1:]

    @property
    def bound(self) -> BoundBijector:
        return BoundBijector(self._bijector.value, self._params, self._state, self._cond,
                             self._key)

    def forward_and_log_det(self, x):
        return self.bound.forward_and_log_det(x)

    def inverse_and_log_det(self, y):
        return self.bound.inverse_and_log_det(y)


class JflowsDistribution(distrax.Distribution):
    """A bound jflows density model as a ``distrax.Distribution`` (see
    :func:`to_distribution`)."""

    def __init__(self, bound: BoundModel):
        self._model = Static(bound.model)
        self._params, self._state, self._cond = bound[1:]

    @property
    def bound(self) -> BoundModel:
        return BoundModel(self._model.value, self._params, self._state, self._cond)

    @property
    def event_shape(self):
        return self.bound.event_shape

    @property
    def batch_shape(self):
        return self.bound.batch_shape

    @property
    def dtype(self):
        return self.bound.dtype

    def log_prob(self, value):
        return self.bound.log_prob(value)

    def _sample_n(self, key, n):
        return self.bound.sample(key, (n,))

    def _sample_n_and_log_prob(self, key, n):
        return self.bound.sample_and_log_prob(key, (n,))


def to_bijector(bijector, params, state=(), *, cond=None, key=None) -> JflowsBijector:
    """``bijector`` (a jflows Bijector) as a ``distrax.Bijector`` over fixed ``params``,
    ``state``, ``cond`` (required for a conditional bijector) and ``key`` (for stochastic
    ones), evaluated with ``train=False``."""
    return JflowsBijector(BoundBijector.bind(bijector, params, state, cond, key,
                                             "interop.distrax.to_bijector"))


def to_distribution(model, params, state=(), *, cond=None) -> JflowsDistribution:
    """``model`` (any jflows density model) as a ``distrax.Distribution`` over fixed
    ``params``, ``state`` and ``cond``; its batch shape is ``cond``'s."""
    return JflowsDistribution(BoundModel.bind(model, params, state, cond,
                                              "interop.distrax.to_distribution"))


def _event_ndims(bijector, name: str) -> tuple[int, int]:
    ndims = (bijector.event_ndims_in, bijector.event_ndims_out)
    if not all(isinstance(n, int) for n in ndims):
        raise TypeError(f"{name}: only bijectors of array events are supported, got "
                        f"event_ndims_in={ndims[0]}, event_ndims_out={ndims[1]}.")
    return ndims


def from_bijector(bijector, params=None):
    """A distrax bijector as a jflows :class:`~jflows.bijectors.Bijector`.

    Args:
      bijector: a ``distrax.Bijector`` (used as it is: ``params = ()``), or with
        ``params`` a function ``params -> distrax.Bijector`` whose params are learned, e.g.
        ``lambda p: distrax.ScalarAffine(p["shift"], jnp.exp(p["log_scale"]))``.
      params: the initial params for a function (``None`` for an object).

    ``init(key, x)`` returns those params; ``event_ndims`` is distrax's ``event_ndims_in``.
    """
    name = "interop.distrax.from_bijector"
    make, params = lift(bijector, params, distrax.Bijector, name, leaves_are_params=False)
    ndims_in, ndims_out = _event_ndims(make(params), name)
    return peer_bijector(
        name, make, params, event_ndims=ndims_in, event_ndims_out=ndims_out,
        forward_and_log_det=lambda b, x, cond: b.forward_and_log_det(x),
        inverse_and_log_det=lambda b, y, cond: b.inverse_and_log_det(y))


def from_distribution(distribution, params=None):
    """A distrax distribution (or a function ``params -> one``) as a jflows
    :class:`~jflows.distributions.Distribution`, e.g. the base of
    :func:`jflows.distributions.transformed`. Its ``batch_shape`` must be ``()``: wrap a
    batch of independent coordinates in ``distrax.Independent``."""
    name = "interop.distrax.from_distribution"
    make, params = lift(distribution, params, distrax.Distribution, name,
                        leaves_are_params=False)
    made = make(params)
    if tuple(made.batch_shape) != ():
        raise ValueError(f"{name}: expected a distribution with batch_shape (), got "
                         f"batch_shape {tuple(made.batch_shape)} (event_shape "
                         f"{tuple(made.event_shape)}); reinterpret the batch axes as event "
                         f"axes with distrax.Independent(dist, reinterpreted_batch_ndims="
                         f"{len(made.batch_shape)}).")
    return peer_distribution(
        name, make, params, event_shape=made.event_shape,
        log_prob=lambda d, x, cond: d.log_prob(x),
        sample_and_log_prob=lambda d, key, shape, cond: d.sample_and_log_prob(
            seed=key, sample_shape=shape))
