"""What every bridge shares, written once: binding a jflows model to its params, and
lifting a peer object's arrays into jflows params.

**To a peer** (:class:`BoundBijector`, :class:`BoundModel`): a jflows bijector or density
model is pure functions over ``(params, state)``; a peer object (a ``distrax.Bijector``, a
``tfb.Bijector``, a ``tfd.Distribution``) carries its parameters. Binding closes the
functions over ``params``, ``state`` and, for a conditional model, ``cond`` (and a ``key``
for stochastic bijectors), evaluating with ``train=False``. The peer wrappers keep these
arrays as attributes, so gradients w.r.t. ``params`` flow through every peer method.

**From a peer** (:func:`lift`, :func:`peer_bijector`, :func:`peer_distribution`): a peer
object becomes ``make(params) -> object`` plus initial ``params``. Either

* the object itself. TFP-JAX objects are pytrees of their constructor's parameters:
  their floating-point array leaves are the params (a tuple, in leaf order) and the rest
  (integer indices, shapes, functions) stays fixed. FlowJAX objects are equinox modules,
  partitioned with ``eqx.partition``. A distrax object is kept fixed (``params = ()``):
  its leaves include derived caches (``ScalarAffine`` holds ``scale``, ``log_scale`` and
  ``inv_scale``) that would drift apart if trained as separate arrays; or
* a function ``make(params) -> object`` with ``params`` of your choice, e.g. to keep a
  scale positive: ``make = lambda p: tfb.Scale(jnp.exp(p["log_scale"]))``.

``init(key, ...)`` then returns those params (cast to the requested dtype); the key is
unused because the peer object already holds its initial values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jflows.bijectors.base import (
    EMPTY,
    Bijector,
    batch_shape_of,
    check_event_rank,
    output_event_ndims,
)
from jflows.conditioning import CondShape, check_cond, normalize_sample_shape
from jflows.distributions.base import (
    DensityModel,
    Distribution,
    cast_floating,
    check_data_dtype,
    check_init_dtype,
    check_key,
    check_tree,
    default_float_dtype,
    log_prob_from,
    model_dtype,
)

Array = jax.Array


class Static:
    """A holder that JAX sees as one opaque leaf: distrax's ``Jittable`` keeps it as
    metadata, so a wrapper holding a jflows model (which refuses to be a pytree) still
    passes through ``jax.jit`` with its params traced."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


# --------------------------------------------------------------------------------------
# jflows -> peer: a model bound to its params.
# --------------------------------------------------------------------------------------


def check_jflows_bijector(bijector, name: str) -> None:
    """A TypeError naming what was got unless ``bijector`` is a jflows Bijector."""
    if not isinstance(bijector, Bijector):
        raise TypeError(f"{name}: expected a jflows Bijector, got {type(bijector).__name__}.")


class BoundBijector(NamedTuple):
    """A jflows bijector with its params, state, ``cond`` and ``key`` fixed."""

    bijector: Bijector
    params: Any
    state: Any
    cond: Array | None
    key: Array | None

    @classmethod
    def bind(cls, bijector, params, state, cond, key, name: str) -> BoundBijector:
        check_jflows_bijector(bijector, name)
        cond = check_cond(cond, bijector.cond_shape, None, name)
        return cls(bijector, params, state, cond, key)

    @property
    def event_ndims_in(self) -> int:
        return self.bijector.event_ndims

    @property
    def event_ndims_out(self) -> int:
        return output_event_ndims(self.bijector)

    def _call(self, direction: str, value):
        kwargs = {"cond": self.cond} if self.cond is not None else {}
        if self.key is not None:
            kwargs["key"] = self.key
        out, log_det, _ = getattr(self.bijector, direction)(self.params, self.state, value,
                                                           train=False, **kwargs)
        return out, log_det

    def event_shape_out(self, shape, direction: str) -> tuple[int, ...]:
        """The shape ``direction`` (``'forward'``/``'inverse'``) maps ``shape`` to: its
        leading axes kept, its event part as the bijector's output (found with
        :func:`jax.eval_shape`; only shape-changing bijectors such as ``reshape`` differ)."""
        shape = tuple(int(n) for n in shape)
        if self.bijector.event_ndims_out is None:
            return shape
        n_in, n_out = ((self.event_ndims_in, self.event_ndims_out) if direction == "forward"
                       else (self.event_ndims_out, self.event_ndims_in))
        event = jax.ShapeDtypeStruct(shape[len(shape) - n_in:],
                                     model_dtype(self.params, self.state) or jnp.float32)
        out = jax.eval_shape(lambda v: self._call(direction, v)[0], event).shape
        return shape[: len(shape) - n_in] + tuple(out[len(out) - n_out:])

    def forward_and_log_det(self, x):
        """``(f(x), log|det df/dx|)``, the log-det with the batch shape."""
        return self._call("forward", jnp.asarray(x))

    def inverse_and_log_det(self, y):
        """``(f^{-1}(y), log|det df^{-1}/dy|)``."""
        return self._call("inverse", jnp.asarray(y))


class BoundModel(NamedTuple):
    """A jflows density model with its params, state and ``cond`` fixed.

    Its batch shape is ``cond``'s (``()`` for an unconditional model): a peer's
    ``sample(n)`` draws ``n`` samples per conditioning input, ``(n, *batch, *event)``.
    """

    model: Any
    params: Any
    state: Any
    cond: Array | None

    @classmethod
    def bind(cls, model, params, state, cond, name: str) -> BoundModel:
        if not isinstance(model, DensityModel):
            raise TypeError(f"{name}: expected a jflows density model (log_prob, sample, "
                            f"sample_and_log_prob, event_shape, cond_shape), got "
                            f"{type(model).__name__}.")
        return cls(model, params, state, check_cond(cond, model.cond_shape, None, name))

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self.model.event_shape)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        if self.cond is None:
            return ()
        return tuple(self.cond.shape[: self.cond.ndim - len(self.model.cond_shape)])

    @property
    def dtype(self):
        return model_dtype(self.params, self.state) or default_float_dtype()

    def log_prob(self, x):
        return self.model.log_prob(self.params, self.state, x, cond=self.cond)

    def sample_and_log_prob(self, key, sample_shape):
        """``sample_shape + batch_shape + event_shape`` samples and their log-densities."""
        shape = tuple(int(n) for n in sample_shape) + self.batch_shape
        return self.model.sample_and_log_prob(self.params, self.state, key, shape,
                                              cond=self.cond)

    def sample(self, key, sample_shape):
        shape = tuple(int(n) for n in sample_shape) + self.batch_shape
        return self.model.sample(self.params, self.state, key, shape, cond=self.cond)


# --------------------------------------------------------------------------------------
# peer -> jflows: lifting arrays into params.
# --------------------------------------------------------------------------------------


def _is_param(leaf) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray)) and jnp.issubdtype(leaf.dtype, jnp.inexact)


def lift(peer, params, kind: type | tuple[type, ...], name: str, *,
         leaves_are_params: bool = True) -> tuple[Callable, Any]:
    """``(make, params)`` for a peer object or a ``make(params)`` function (module docstring).

    ``kind`` is the peer class the object (or ``make``'s result) must be an instance of.
    With ``leaves_are_params=False`` an object is kept as it is (``params = ()``): for
    peers whose pytree leaves include derived arrays (distrax caches e.g. ``log_scale``
    beside ``scale``), which would not stay consistent if trained separately.
    """
    if params is not None:
        if not callable(peer) or isinstance(peer, kind):
            raise TypeError(f"{name}: with params given, pass a function params -> "
                            f"{_names(kind)}; got {type(peer).__name__}.")
        made = peer(params)
        if not isinstance(made, kind):
            raise TypeError(f"{name}: make(params) must return a {_names(kind)}, got "
                            f"{type(made).__name__}.")
        return peer, params
    if not isinstance(peer, kind):
        raise TypeError(f"{name}: expected a {_names(kind)} (or a function params -> one, "
                        f"with params=...), got {type(peer).__name__}.")
    if not leaves_are_params:
        return lambda params: peer, ()
    leaves, treedef = jax.tree_util.tree_flatten(peer)
    where = [i for i, leaf in enumerate(leaves) if _is_param(leaf)]

    def make(params):
        filled = list(leaves)
        for i, leaf in zip(where, params, strict=True):
            filled[i] = leaf
        return jax.tree_util.tree_unflatten(treedef, filled)

    return make, tuple(leaves[i] for i in where)


def _names(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(f"{k.__module__.split('.')[0]}.{k.__name__}" for k in kinds)


def _init_params(params, dtype, name: str):
    return cast_floating(params, check_init_dtype(dtype, name))


def peer_bijector(name: str, make: Callable, params, *, event_ndims: int,
                  event_ndims_out: int, forward_and_log_det: Callable,
                  inverse_and_log_det: Callable, cond_shape: CondShape = None) -> Bijector:
    """A jflows :class:`~jflows.bijectors.Bijector` whose params are ``params`` and whose
    maps are the peer object ``make(params)``'s.

    ``forward_and_log_det(obj, x, cond) -> (y, log_det)`` (and the inverse) call the peer;
    the log-det is broadcast to the batch shape (peers return e.g. a scalar for a constant
    Jacobian). The state is empty; ``train`` and ``key`` are ignored (peers have neither).
    """
    expected = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), params)

    def init(key, x):
        del key
        check_event_rank(x, event_ndims, f"{name}.init")
        return _init_params(params, x.dtype, f"{name}.init"), EMPTY

    def call(fn, ndims_in, ndims_out, what):
        def apply(p, state, v, *, cond=None, train=False, key=None):
            del train, key
            where = f"{name}.{what}"
            check_tree(p, expected, "params", where)
            check_event_rank(v, ndims_in, where)
            cond = check_cond(cond, cond_shape, batch_shape_of(v, ndims_in), where)
            out, log_det = fn(make(p), v, cond)
            return out, jnp.broadcast_to(log_det, batch_shape_of(out, ndims_out)), state

        return apply

    return Bijector(init,
                    call(forward_and_log_det, event_ndims, event_ndims_out, "forward"),
                    call(inverse_and_log_det, event_ndims_out, event_ndims, "inverse"),
                    event_ndims,
                    None if event_ndims_out == event_ndims else event_ndims_out,
                    cond_shape)


def peer_distribution(name: str, make: Callable, params, *, event_shape, log_prob: Callable,
                      sample_and_log_prob: Callable, cond_shape: CondShape = None
                      ) -> Distribution:
    """A jflows :class:`~jflows.distributions.Distribution` over the peer object
    ``make(params)``: ``log_prob(obj, x, cond)`` and ``sample_and_log_prob(obj, key, shape,
    cond) -> (x, log_prob)`` call the peer. The state is empty."""
    event_shape = tuple(int(n) for n in event_shape)
    expected = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), params)

    def init(key, dtype=None):
        check_key(key, f"{name}.init")
        return _init_params(params, dtype, f"{name}.init"), ()

    def checked(p, state, where):
        check_tree(p, expected, "params", where)
        check_tree(state, (), "state", where)

    def log_prob_and_state(p, state, x, *, cond=None, train=True, key=None):
        del train, key
        where = f"{name}.log_prob"
        checked(p, state, where)
        x = check_data_dtype(x, p, state, where)
        check_event_rank(x, len(event_shape), where)
        cond = check_cond(cond, cond_shape, batch_shape_of(x, len(event_shape)), where)
        return log_prob(make(p), x, cond), state, ()

    def draw(p, state, key, sample_shape=(), *, cond=None):
        where = f"{name}.sample"
        checked(p, state, where)
        check_key(key, where)
        shape = normalize_sample_shape(sample_shape, where)
        return sample_and_log_prob(make(p), key, shape, check_cond(cond, cond_shape, None,
                                                                    where))

    def sample(p, state, key, sample_shape=(), *, cond=None):
        return draw(p, state, key, sample_shape, cond=cond)[0]

    return Distribution(init, log_prob_from(log_prob_and_state), log_prob_and_state, sample,
                        draw, event_shape, cond_shape)
