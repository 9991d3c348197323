"""The density-model protocol, its checks, and the base distributions.

Every density model in jflows -- a base distribution, a flow (:func:`transformed`), MADE
MoG, MAF MoG, FFJORD flows, PixelCNN++ -- answers one protocol, :class:`DensityModel`
(typed ``Protocol`` fields in the style of optax's ``GradientTransformation``)::

    init(key, dtype=None)                        -> (params, state)       # state () if none
    log_prob(params, state, x, *, cond=None, key=None)              -> log p(x | cond)
    log_prob_and_state(params, state, x, *, cond=None, train=True, key=None)
                                                 -> (log_prob, new_state, info)
    sample(params, state, key, sample_shape=(), *, cond=None)       -> x
    sample_and_log_prob(params, state, key, sample_shape=(), *, cond=None) -> (x, log_prob)
    event_shape: tuple[int, ...]
    cond_shape:  tuple[int, ...] | None                              # None: unconditional

* ``log_prob`` is the evaluation path: it returns the array alone, with the batch shape
  of ``x`` (``x.shape[:-len(event_shape)]``), and never changes ``state``.
* ``log_prob_and_state`` is the training path: with ``train=True`` batch-norm layers
  normalise with batch statistics and the returned ``new_state`` carries their updated
  running averages; ``key`` feeds stochastic parts (dropout, Hutchinson traces).
  ``info`` holds diagnostics beside the result (an FFJORD solve's steps and why it
  failed; ``()`` when the model reports nothing) -- never in ``state``.
* ``params`` are trained by an optimizer, ``state`` is not; both are pytrees of arrays.
* ``cond`` follows :mod:`jflows.conditioning`: an error for unconditional models, required
  for conditional ones, its batch shape broadcast with the data's.
* A model holds functions and static configuration only: close over it; passing it to
  ``jax.jit`` as an argument raises a TypeError that says so.

The base distributions here wrap ``tfp.substrates.jax.distributions`` (``Independent``
over the event axes), not re-derived densities. Each parameter given to a constructor is
a fixed constant; each left as ``None`` is learnable, created by ``init`` (positive ones in
log space). Scalar-event base distributions also have ``cdf`` and ``survival_function``
(``1 - cdf`` computed without cancellation in the upper tail).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow_probability.substrates.jax as tfp

from jflows.bijectors.base import check_event_shape, refuse_as_pytree
from jflows.conditioning import CondShape, check_cond, normalize_sample_shape, shape_tuple

tfd = tfp.distributions

Params = Any
State = Any
Info = Any
Array = jax.Array


class InitFn(Protocol):
    def __call__(self, key: Array, dtype=None) -> tuple[Params, State]: ...


class LogProbFn(Protocol):
    def __call__(self, params: Params, state: State, x: Array, *, cond: Array | None = None,
                 key: Array | None = None) -> Array: ...


class LogProbAndStateFn(Protocol):
    def __call__(self, params: Params, state: State, x: Array, *, cond: Array | None = None,
                 train: bool = True, key: Array | None = None
                 ) -> tuple[Array, State, Info]: ...


class SampleFn(Protocol):
    def __call__(self, params: Params, state: State, key: Array, sample_shape=(), *,
                 cond: Array | None = None) -> Array: ...


class SampleAndLogProbFn(Protocol):
    def __call__(self, params: Params, state: State, key: Array, sample_shape=(), *,
                 cond: Array | None = None) -> tuple[Array, Array]: ...


@runtime_checkable
class DensityModel(Protocol):
    """What every jflows density model provides; see the module docstring."""

    init: InitFn
    log_prob: LogProbFn
    log_prob_and_state: LogProbAndStateFn
    sample: SampleFn
    sample_and_log_prob: SampleAndLogProbFn
    event_shape: tuple[int, ...]
    cond_shape: CondShape


class Distribution(NamedTuple):
    """A :class:`DensityModel` with optional scalar ``cdf`` / ``survival_function``
    (``(params, state, x) -> array``; ``None`` where not defined)."""

    init: InitFn
    log_prob: LogProbFn
    log_prob_and_state: LogProbAndStateFn
    sample: SampleFn
    sample_and_log_prob: SampleAndLogProbFn
    event_shape: tuple[int, ...]
    cond_shape: CondShape = None
    cdf: Callable[..., Array] | None = None
    survival_function: Callable[..., Array] | None = None


refuse_as_pytree(Distribution)


def default_float_dtype():
    """float64 when ``jax_enable_x64`` is on, else float32."""
    return jnp.result_type(float)


# --------------------------------------------------------------------------------------
# Checks written once, used by every model.
# --------------------------------------------------------------------------------------


def check_key(key, name: str) -> None:
    """A PRNG key: a typed key array (``jax.random.key``) or a raw ``uint32[2]`` one."""
    ok = isinstance(key, jax.Array) and (
        jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
        or (key.dtype == jnp.uint32 and key.shape[-1:] == (2,)))
    if not ok:
        got = (f"an array of dtype {key.dtype} and shape {tuple(key.shape)}"
               if isinstance(key, jax.Array) else f"a {type(key).__name__}")
        raise TypeError(f"{name}: expected a PRNG key (jax.random.key(seed)), got {got}.")


def check_init_dtype(dtype, name: str):
    """``dtype`` (default: :func:`default_float_dtype`) as a floating NumPy dtype."""
    dtype = jnp.dtype(dtype or default_float_dtype())
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"{name}: dtype must be a floating dtype, got {dtype}.")
    return dtype


def check_event_sizes(event_shape, name: str) -> tuple[int, ...]:
    """``event_shape`` as a tuple of positive ints, with a clear error otherwise."""
    return shape_tuple(event_shape, "event_shape", 1, name)


def cast_floating(tree, dtype):
    """Every floating leaf of ``tree`` in ``dtype`` (Flax creates float32 params whatever
    the example's dtype; a model's ``init(key, dtype)`` returns params and state in
    ``dtype``, so float64 data meet float64 params)."""
    return jax.tree_util.tree_map(
        lambda a: a.astype(dtype) if jnp.issubdtype(jnp.result_type(a), jnp.floating) else a,
        tree)


def _describe(tree) -> str:
    shapes = jax.tree_util.tree_map(lambda a: tuple(jnp.shape(a)), tree)
    text = str(shapes)
    return text if len(text) <= 300 else text[:300] + " ..."


def check_tree(tree, expected, what: str, name: str) -> None:
    """Raise when ``tree`` has not the structure and leaf shapes of ``expected`` (the
    abstract output of ``init``): a wrong dict key, a missing entry, params of the wrong
    rank, or ``state`` passed where ``params`` belong."""
    try:
        same_structure = (jax.tree_util.tree_structure(tree)
                          == jax.tree_util.tree_structure(expected))
    except TypeError:
        same_structure = False
    if same_structure:
        bad = [(tuple(jnp.shape(a)), tuple(b.shape)) for a, b in
               zip(jax.tree_util.tree_leaves(tree), jax.tree_util.tree_leaves(expected),
                   strict=True) if tuple(jnp.shape(a)) != tuple(b.shape)]
        if not bad:
            return
        detail = f"leaf shapes differ (got, expected): {bad[:3]}"
    else:
        detail = "the pytree structure differs"
    raise ValueError(f"{name}: {what} do not match what init made ({detail}). Expected "
                     f"{_describe(expected)}, got {_describe(tree)}. Pass "
                     f"(params, state) in that order, as init returns them.")


def model_dtype(params, state):
    """The floating dtype of the first floating leaf of ``params`` or ``state`` (or None)."""
    for leaf in jax.tree_util.tree_leaves((params, state)):
        dtype = jnp.result_type(leaf)
        if jnp.issubdtype(dtype, jnp.floating):
            return dtype
    return None


def check_data_dtype(x, params, state, name: str) -> Array:
    """Continuous data in the model's float dtype.

    Integer data is cast to the model's dtype (a density of continuous data at integer
    points); floating data of another width is refused, so float64 data never drifts a
    float32 model's batch-norm state to float64 (or float32 data a float64 model's).
    A container (a dict batch, a list) is refused: the model takes the array itself.
    """
    if isinstance(x, (dict, list, tuple)):
        raise TypeError(f"{name}: expected the data as one array, got a "
                        f"{type(x).__name__} ({jax.tree.structure(x)}); pass the array "
                        "itself (e.g. batch['x']).")
    x = jnp.asarray(x)
    dtype = model_dtype(params, state)
    if jnp.issubdtype(x.dtype, jnp.integer) or x.dtype == jnp.bool_:
        return x.astype(dtype or default_float_dtype())
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name}: expected real-valued data, got dtype {x.dtype}.")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{name}: the data are {x.dtype} but the model's params/state are "
                        f"{dtype}; cast the data (x.astype({dtype.name})) or init the model "
                        f"with dtype={x.dtype.name}.")
    return x


def abstract_init(init: InitFn) -> Callable:
    """``dtype -> eval_shape(init(key, dtype))``, cached: the expected (params, state)."""

    @functools.lru_cache(maxsize=8)
    def expected(dtype):
        return jax.eval_shape(lambda: init(jax.random.key(0), dtype))

    return lambda dtype: expected(jnp.dtype(dtype or default_float_dtype()))


def check_params_and_state(expected: Callable, params, state, name: str) -> None:
    """Check ``(params, state)`` against the model's abstract ``init`` output."""
    expected_params, expected_state = expected(model_dtype(params, state))
    check_tree(params, expected_params, "params", name)
    check_tree(state, expected_state, "state", name)


def log_prob_from(log_prob_and_state: LogProbAndStateFn) -> LogProbFn:
    """The evaluation path from the training path: ``train=False``, the array alone."""

    def log_prob(params, state, x, *, cond=None, key=None):
        return log_prob_and_state(params, state, x, cond=cond, train=False, key=key)[0]

    return log_prob


# --------------------------------------------------------------------------------------
# Base distributions (TFP's JAX substrate).
# --------------------------------------------------------------------------------------


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
    event_shape = check_event_sizes(event_shape, name)
    event_ndims = len(event_shape)

    def init(key, dtype=None):
        check_key(key, f"{name}.init")
        dtype = check_init_dtype(dtype, f"{name}.init")
        return {k: jnp.full(event_shape, v, dtype) for k, v in learnable.items()}, ()

    expected = abstract_init(init)

    def _law(params, dtype):
        p = {k: jnp.broadcast_to(jnp.asarray(v, dtype), event_shape) for k, v in constants.items()}
        p.update({k: v.astype(dtype) for k, v in dict(params or {}).items()})
        return tfd.Independent(make(p), reinterpreted_batch_ndims=event_ndims)

    def _checked(params, state, x, cond, what):
        check_params_and_state(expected, params, state, f"{name}.{what}")
        check_cond(cond, None, None, f"{name}.{what}")
        x = check_data_dtype(x, params, state, f"{name}.{what}")
        check_event_shape(x, event_shape, f"{name}.{what}", "the distribution's event shape")
        return x

    def log_prob_and_state(params, state, x, *, cond=None, train=True, key=None):
        del train, key
        x = _checked(params, state, x, cond, "log_prob")
        return _law(params, x.dtype).log_prob(x), state, ()

    def sample(params, state, key, sample_shape=(), *, cond=None):
        check_params_and_state(expected, params, state, f"{name}.sample")
        check_cond(cond, None, None, f"{name}.sample")
        shape = normalize_sample_shape(sample_shape, f"{name}.sample")
        dtype = model_dtype(params, state) or default_float_dtype()
        return _law(params, dtype).sample(shape, seed=key)

    def sample_and_log_prob(params, state, key, sample_shape=(), *, cond=None):
        x = sample(params, state, key, sample_shape, cond=cond)
        return x, _law(params, x.dtype).log_prob(x)

    def cdf(params, state, x):
        x = _checked(params, state, x, None, "cdf")
        return _law(params, x.dtype).cdf(x)

    def survival_function(params, state, x):
        x = _checked(params, state, x, None, "survival_function")
        return _law(params, x.dtype).survival_function(x)

    scalar = event_ndims == 0
    return Distribution(init, log_prob_from(log_prob_and_state), log_prob_and_state, sample,
                        sample_and_log_prob, event_shape, None, cdf if scalar else None,
                        survival_function if scalar else None)


def _positive(value, what: str, name: str):
    if not np.all(np.asarray(value) > 0):
        raise ValueError(f"{name}: {what} must be > 0, got {value}.")


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
        _positive(scale, "scale", "diag_normal")
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
    _positive(scale, "scale", "logistic")
    return _from_tfp(
        "logistic",
        lambda p: tfd.Logistic(p["loc"], p["scale"]),
        event_shape,
        {"loc": loc, "scale": scale},
        {},
    )
