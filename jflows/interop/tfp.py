"""Bridges between jflows and TFP-JAX (``tensorflow_probability.substrates.jax``), both ways.

* :func:`to_bijector`: a jflows bijector with its params/state (and ``cond``, ``key``) as
  a ``tfb.Bijector`` (``forward_min_event_ndims`` = the bijector's ``event_ndims``,
  ``inverse_min_event_ndims`` its output's); TFP adds the log-det over any further event
  axes itself (``forward_log_det_jacobian(x, event_ndims=k)``).
* :func:`to_distribution`: a jflows density model with its params/state (and ``cond``) as
  a ``tfd.Distribution`` (``log_prob``, ``sample``, ``experimental_sample_and_log_prob``,
  ``event_shape``, ``batch_shape`` = ``cond``'s batch shape; fully reparameterized), for
  TFP code that expects one (``tfd.TransformedDistribution``, ``tfp.mcmc``, ``tfp.vi``).
* :func:`from_bijector` / :func:`from_distribution`: a TFP-JAX bijector or distribution
  as a jflows bijector / base distribution. TFP-JAX has no ``tf.Variable``: a TFP object
  is a pytree of its constructor's parameters, which become the jflows params; or pass
  ``make(params) -> object`` with params of your choice (e.g. in log space).

The wrappers hold the params as attributes (closed over, not pytree children): build
them inside the function you differentiate or jit, e.g. ``lambda p: to_distribution(flow,
p, state).log_prob(x)``.
"""

from __future__ import annotations

import jax
import tensorflow_probability.substrates.jax as tfp
from tensorflow_probability.substrates.jax.internal import samplers

from jflows.interop.common import (
    BoundBijector,
    BoundModel,
    lift,
    peer_bijector,
    peer_distribution,
)

tfb = tfp.bijectors
tfd = tfp.distributions


class JflowsBijector(tfb.Bijector):
    """A bound jflows bijector as a ``tfb.Bijector`` (made by :func:`to_bijector`)."""

    def __init__(self, bound: BoundBijector, name: str = "jflows"):
        parameters = dict(locals())
        self._bound = bound
        super().__init__(forward_min_event_ndims=bound.event_ndims_in,
                         inverse_min_event_ndims=bound.event_ndims_out,
                         is_constant_jacobian=False, parameters=parameters, name=name)

    @property
    def bound(self) -> BoundBijector:
        return self._bound

    def _forward(self, x):
        return self._bound.forward_and_log_det(x)[0]

    def _inverse(self, y):
        return self._bound.inverse_and_log_det(y)[0]

    def _forward_event_shape(self, input_shape):
        return self._bound.event_shape_out(input_shape, "forward")

    def _forward_event_shape_tensor(self, input_shape):
        return self._bound.event_shape_out(input_shape, "forward")

    def _inverse_event_shape(self, output_shape):
        return self._bound.event_shape_out(output_shape, "inverse")

    def _inverse_event_shape_tensor(self, output_shape):
        return self._bound.event_shape_out(output_shape, "inverse")

    def _forward_log_det_jacobian(self, x):
        return self._bound.forward_and_log_det(x)[1]

    def _inverse_log_det_jacobian(self, y):
        return self._bound.inverse_and_log_det(y)[1]


class JflowsDistribution(tfd.Distribution):
    """A bound jflows density model as a ``tfd.Distribution`` (see :func:`to_distribution`)."""

    def __init__(self, bound: BoundModel, name: str = "jflows"):
        parameters = dict(locals())
        self._bound = bound
        super().__init__(dtype=bound.dtype,
                         reparameterization_type=tfd.FULLY_REPARAMETERIZED,
                         validate_args=False, allow_nan_stats=True, parameters=parameters,
                         name=name)

    @property
    def bound(self) -> BoundModel:
        return self._bound

    def _event_shape(self):
        return self._bound.event_shape

    def _event_shape_tensor(self):
        return self._bound.event_shape

    def _batch_shape(self):
        return self._bound.batch_shape

    def _batch_shape_tensor(self):
        return self._bound.batch_shape

    def _log_prob(self, x):
        return self._bound.log_prob(x)

    def _sample_n(self, n, seed=None):
        return self._bound.sample(samplers.sanitize_seed(seed), (n,))

    def _sample_and_log_prob(self, sample_shape, seed):
        return self._bound.sample_and_log_prob(samplers.sanitize_seed(seed),
                                               tuple(int(n) for n in sample_shape))


def to_bijector(bijector, params, state=(), *, cond=None, key=None) -> JflowsBijector:
    """``bijector`` (a jflows Bijector) as a ``tfb.Bijector`` over fixed ``params``,
    ``state``, ``cond`` (required for a conditional bijector) and ``key`` (for stochastic
    ones), evaluated with ``train=False``."""
    return JflowsBijector(BoundBijector.bind(bijector, params, state, cond, key,
                                             "interop.tfp.to_bijector"))


def to_distribution(model, params, state=(), *, cond=None) -> JflowsDistribution:
    """``model`` (any jflows density model) as a ``tfd.Distribution`` over fixed ``params``,
    ``state`` and ``cond``; its batch shape is ``cond``'s."""
    return JflowsDistribution(BoundModel.bind(model, params, state, cond,
                                              "interop.tfp.to_distribution"))


def _min_event_ndims(bijector, name: str) -> tuple[int, int]:
    ndims = (bijector.forward_min_event_ndims, bijector.inverse_min_event_ndims)
    if not all(isinstance(n, int) for n in ndims):
        raise TypeError(f"{name}: only bijectors of single-array events are supported, got "
                        f"forward_min_event_ndims={ndims[0]}, "
                        f"inverse_min_event_ndims={ndims[1]}.")
    return ndims


def from_bijector(bijector, params=None):
    """A TFP-JAX bijector as a jflows :class:`~jflows.bijectors.Bijector`.

    Args:
      bijector: a ``tfb.Bijector`` (its floating-point parameters become the params), or
        with ``params`` a function ``params -> tfb.Bijector``, e.g.
        ``lambda p: tfb.Scale(jnp.exp(p["log_scale"]))``.
      params: the initial params for a function (``None`` for an object).

    ``event_ndims`` is TFP's ``forward_min_event_ndims``; the log-det is TFP's
    ``forward_log_det_jacobian(x, event_ndims=forward_min_event_ndims)``.
    """
    name = "interop.tfp.from_bijector"
    make, params = lift(bijector, params, tfb.Bijector, name)
    ndims_in, ndims_out = _min_event_ndims(make(params), name)

    def forward_and_log_det(b, x, cond):
        return b.forward(x), b.forward_log_det_jacobian(x, event_ndims=ndims_in)

    def inverse_and_log_det(b, y, cond):
        return b.inverse(y), b.inverse_log_det_jacobian(y, event_ndims=ndims_out)

    return peer_bijector(name, make, params, event_ndims=ndims_in, event_ndims_out=ndims_out,
                         forward_and_log_det=forward_and_log_det,
                         inverse_and_log_det=inverse_and_log_det)


def from_distribution(distribution, params=None):
    """A TFP-JAX distribution (or a function ``params -> one``) as a jflows
    :class:`~jflows.distributions.Distribution`, e.g. the base of
    :func:`jflows.distributions.transformed`. Its ``batch_shape`` must be ``()``: wrap a
    batch of independent coordinates in ``tfd.Independent``."""
    name = "interop.tfp.from_distribution"
    make, params = lift(distribution, params, tfd.Distribution, name)
    made = make(params)
    if tuple(made.batch_shape) != ():
        raise ValueError(f"{name}: expected a distribution with batch_shape (), got "
                         f"batch_shape {tuple(made.batch_shape)} (event_shape "
                         f"{tuple(made.event_shape)}); reinterpret the batch axes as event "
                         f"axes with tfd.Independent(dist, reinterpreted_batch_ndims="
                         f"{len(made.batch_shape)}).")

    def sample_and_log_prob(d, key, shape, cond):
        return d.experimental_sample_and_log_prob(shape, seed=_raw_key(key))

    return peer_distribution(
        name, make, params, event_shape=made.event_shape,
        log_prob=lambda d, x, cond: d.log_prob(x), sample_and_log_prob=sample_and_log_prob)


def _raw_key(key):
    """TFP-JAX seeds are raw ``uint32[2]`` keys."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key
