"""One autoregressive solver, written once, with a pluggable per-dimension step.

A conditioner maps ``x`` (``(..., D)``) and an optional ``cond`` to ``K`` parameters per
dimension, ``theta = conditioner(params, x, cond)`` of shape ``(..., D, K)``, with
``theta_i`` depending only on the ``x_j`` that come before ``i`` in the autoregressive
order. Sampling a MAF, evaluating an IAF density and sampling a MADE MoG all solve, one
dimension at a time in that order,

    x_i = step(theta_i, noise_i)[0],

with fixed noise and a per-dimension ``step(theta_i, noise_i) -> (value_i, aux_i)``:

* MAF / IAF (an affine :class:`Transformer`), noise ``u_i``, ``theta_i = (shift_i,
  log_scale_i)``: ``x_i = u_i exp(log_scale_i) + shift_i``, ``aux_i = log_scale_i
  = log|dx_i/du_i|``;
* MADE MoG, noise ``(g_i, z_i)`` (a Gumbel vector and a standard normal): component
  ``c = argmax_c(logits_ic + g_ic)``, ``x_i = mu_ic + sigma_ic z_i``,
  ``aux_i = log p(x_i | theta_i)``;
* any :class:`Transformer` (a rational-quadratic spline with ``K`` bin parameters, ...):
  ``step = transformer.forward``.

:func:`solve_autoregressive` is the one solver; both methods return ``(x, aux)`` with
``aux`` the steps' values at the solution:

* incremental (``method="auto"`` with a :class:`jflows.nets.MADE` conditioner): the
  degree-blocked evaluation of :func:`jflows.nets.made_sampling.made_solve`, about one
  network pass in all;
* ``D`` full passes (``method="passes"``, and any function conditioner): with the noise
  fixed, pass ``k`` makes the first ``k`` dimensions in the order exact (``theta`` of the
  ``k``-th reads only the first ``k - 1``), so after ``D`` passes all are, and the last
  pass's ``aux`` (computed from exact inputs) is exact too.

A :class:`Transformer` is the per-dimension bijection of a masked autoregressive bijector
(:func:`jflows.bijectors.masked_autoregressive`), in the spirit of distrax's
``MaskedCoupling(conditioner, bijector)``: ``K`` parameters per dimension, a ``forward``
(the sampling step, solved here) and an ``inverse`` (the density direction, one
conditioner pass), both elementwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jflows.conditioning import CondShape, check_cond, normalize_cond_shape
from jflows.nets.made import MADE
from jflows.nets.made_sampling import made_solve

Array = jax.Array
Step = Callable[[Array, Any], tuple[Array, Array]]

SAMPLING = ("auto", "passes")
"""``method`` of :func:`solve_autoregressive`: incremental for a MADE, or ``D`` passes."""


class Transformer(NamedTuple):
    """A per-dimension bijection ``x_i = f(u_i; theta_i)`` with ``K`` parameters.

    ``forward(theta, u) -> (x, log|dx/du|)`` and ``inverse(theta, x) -> (u, log|du/dx|)``
    act elementwise: ``theta`` has shape ``batch + (K,)``, ``u`` / ``x`` and both results
    ``batch`` (any leading axes). ``forward`` is the step :func:`solve_autoregressive`
    solves (its log-det is the ``aux``).
    """

    params_per_dim: int
    forward: Step
    inverse: Callable[[Array, Array], tuple[Array, Array]]


class Conditioner(NamedTuple):
    """A conditioner as pure functions: ``init(key, x) -> params`` (``x`` an example event
    or a :class:`jax.ShapeDtypeStruct`), ``apply(params, x, cond) -> theta`` of shape
    ``x.shape + (params_per_dim,)``; ``made`` is set when it is a jflows MADE (then the
    solver evaluates it incrementally)."""

    init: Callable
    apply: Callable
    params_per_dim: int
    cond_shape: CondShape = None
    made: MADE | None = None


def made_conditioner(made: MADE) -> Conditioner:
    """A MADE as a :class:`Conditioner` (its params are ``made.init(...)['params']``)."""

    def init(key, x):
        example = jnp.zeros((made.event_size,), x.dtype)
        cond = None if made.cond_shape is None else jnp.zeros(made.cond_shape, x.dtype)
        return made.init(key, example, cond)["params"]

    def apply(params, x, cond):
        return made.apply({"params": params}, x, cond)

    return Conditioner(init, apply, made.params_per_dim, made.cond_shape, made)


def _no_params(key, x):
    del key, x
    return ()


def _per_dimension(out, shape: tuple[int, ...], k: int, name: str) -> Array:
    """A function conditioner's output as ``shape + (k,)``: one such array, or a tuple of
    ``k`` arrays of ``shape`` (as TFP's ``(shift, log_scale)``) stacked on a last axis."""
    if isinstance(out, (tuple, list)):
        got = tuple(tuple(jnp.shape(o)) for o in out)
        if len(out) == k and all(g == shape for g in got):
            return jnp.stack(out, axis=-1)
    else:
        got = tuple(jnp.shape(out))
        if got == shape + (k,):
            return out
    raise ValueError(
        f"{name}: the conditioner must return the transformer's {k} parameters per "
        f"dimension for the input of shape {shape}: a tuple of {k} arrays of that shape "
        f"(for the affine transformer: shift and log_scale) or one array of shape "
        f"{shape + (k,)}; got {got}."
    )


def function_conditioner(fn: Callable, init: Callable | None, params_per_dim: int,
                         cond_shape, name: str) -> Conditioner:
    """A :class:`Conditioner` from ``fn(params, x, cond)`` (autoregressive in ``x``; not
    checked) and ``init(key, x) -> params`` (default: no params)."""

    def apply(params, x, cond):
        return _per_dimension(fn(params, x, cond), tuple(x.shape), params_per_dim, name)

    return Conditioner(init or _no_params, apply, params_per_dim,
                       normalize_cond_shape(cond_shape, name))


def _check_own_params(kind: str, conditioner, *, init, params_per_dim: int, cond_shape,
                      name: str) -> None:
    """A MADE or a ready Conditioner brings its own init, width and cond_shape: refuse an
    ``init``, a different ``params_per_dim`` or a different ``cond_shape``."""
    if init is not None:
        raise ValueError(f"{name}: init is only for function conditioners; a {kind} "
                         "initialises itself.")
    if conditioner.params_per_dim != params_per_dim:
        raise ValueError(
            f"{name}: the {kind} must have params_per_dim={params_per_dim} (the "
            f"transformer's parameters per dimension), got "
            f"params_per_dim={conditioner.params_per_dim}.")
    cond_shape = normalize_cond_shape(cond_shape, name)
    if cond_shape is not None and cond_shape != conditioner.cond_shape:
        raise ValueError(
            f"{name}: cond_shape={cond_shape} but the {kind} was built with cond_shape="
            f"{conditioner.cond_shape}; a {kind} conditioner's cond_shape is its own "
            "(leave cond_shape unset).")


def as_conditioner(conditioner, *, init: Callable | None, params_per_dim: int, cond_shape,
                   name: str) -> Conditioner:
    """A :class:`Conditioner` from a MADE (with ``params_per_dim`` outputs per dimension;
    its ``cond_shape`` is its own), a ready :class:`Conditioner` (e.g. from
    ``jflows.interop.nnx.conditioner``; likewise its own) or a function with ``init`` and
    ``cond_shape``."""
    own = dict(init=init, params_per_dim=params_per_dim, cond_shape=cond_shape, name=name)
    if isinstance(conditioner, Conditioner):
        _check_own_params("Conditioner", conditioner, **own)
        return conditioner
    if isinstance(conditioner, MADE):
        _check_own_params("MADE", conditioner, **own)
        return made_conditioner(conditioner)
    if not callable(conditioner):
        raise TypeError(
            f"{name}: conditioner must be a jflows.nets.MADE or a function (params, x, cond) "
            f"-> per-dimension params, got {type(conditioner).__name__}.")
    return function_conditioner(conditioner, init, params_per_dim, cond_shape, name)


def check_conditioner_inputs(conditioner: Conditioner, shape, cond, name: str):
    """``cond`` checked by :func:`jflows.conditioning.check_cond` against data of ``shape``
    (``batch_shape + (D,)``), and, for a MADE, ``D`` against its ``event_size``."""
    shape = tuple(shape)
    if conditioner.made is not None:
        return conditioner.made.check_inputs(jax.ShapeDtypeStruct(shape, jnp.float32), cond,
                                             name)
    return check_cond(cond, conditioner.cond_shape, shape[:-1], name)


def _floating_dtype(*trees):
    floats = [leaf for leaf in jax.tree_util.tree_leaves(trees)
              if jnp.issubdtype(jnp.result_type(leaf), jnp.floating)]
    return jnp.result_type(*floats) if floats else jnp.result_type(float)


def _checked_step(step: Step, params, noise, shape: tuple[int, ...], k: int, name: str):
    """``step`` with its results cast to one dtype (the loop carries), and that dtype.

    The step is traced once on abstract values (``theta`` in the dtype of ``params`` and
    ``noise``) to check that it returns ``(value, aux)`` of the solution's shape.
    """
    theta = jax.ShapeDtypeStruct(shape + (k,), _floating_dtype(params, noise))
    spec = jax.tree_util.tree_map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype),
                                  noise)
    out = jax.eval_shape(step, theta, spec)
    shapes = jax.tree_util.tree_map(lambda leaf: tuple(leaf.shape), out)
    if not (isinstance(out, tuple) and len(out) == 2 and shapes == (shape, shape)):
        raise ValueError(f"{name}: the step must return (value, aux), each of the solution's "
                         f"shape {shape}, for parameters of shape {shape + (k,)}; got "
                         f"{shapes}.")
    dtype = out[0].dtype

    def cast(theta, noise_i):
        value, aux = step(theta, noise_i)
        return value.astype(dtype), aux.astype(dtype)

    return cast, dtype


def _check_noise(noise, shape: tuple[int, ...], name: str) -> Array:
    """The first noise leaf reduced to the solution's shape (the loop's template)."""
    leaves = jax.tree_util.tree_leaves(noise)
    bad = [tuple(leaf.shape) for leaf in leaves if tuple(leaf.shape[: len(shape)]) != shape]
    if not leaves or bad:
        raise ValueError(f"{name}: every noise array must have the solution's shape {shape} "
                         f"as its leading axes; got {bad or 'no noise arrays'}.")
    first = leaves[0]
    return first[(...,) + (0,) * (first.ndim - len(shape))]


def _solve_by_passes(conditioner: Conditioner, params, step: Step, noise, cond, template):
    """``D`` full conditioner passes with the noise fixed (see the module docstring)."""

    def one_pass(_, carry):
        x, _ = carry
        return step(conditioner.apply(params, x, cond), noise)

    zeros = jnp.zeros_like(template)
    return jax.lax.fori_loop(0, template.shape[-1], one_pass, (zeros, zeros))


def solve_autoregressive(
    conditioner: Conditioner,
    params,
    step: Step,
    noise,
    shape,
    cond: Array | None = None,
    *,
    method: str = "auto",
    name: str = "solve_autoregressive",
) -> tuple[Array, Array]:
    """Solve ``x_i = step(theta_i(x_{<i}, cond), noise_i)[0]`` for every dimension ``i``.

    Args:
      conditioner: a :class:`Conditioner` (:func:`made_conditioner`,
        :func:`function_conditioner`).
      params: its params.
      step: ``(theta_i, noise_i) -> (value_i, aux_i)``, elementwise over any leading axes:
        ``theta_i`` has ``K = conditioner.params_per_dim`` entries on its last axis,
        ``noise_i`` is the matching slice of every ``noise`` leaf; ``value_i`` and
        ``aux_i`` have the leading axes (e.g. ``Transformer.forward``).
      noise: a pytree of arrays, each of shape ``shape + extra`` (per leaf).
      shape: the solution's shape ``batch_shape + (D,)``.
      cond: the conditioning input (``cond_batch_shape + cond_shape``, broadcasting with
        ``batch_shape``), or None for an unconditional conditioner.
      method: ``"auto"``: incremental for a MADE conditioner, else ``D`` passes;
        ``"passes"``: ``D`` passes.
      name: the caller's name in error messages.

    Returns ``(x, aux)``, each of ``shape``, in the dtype of the step's values.
    Not jitted: callers jit it once (it holds compiled loops).
    """
    if method not in SAMPLING:
        raise ValueError(f"{name}: the sampling method must be one of {SAMPLING}, got "
                         f"{method!r}.")
    shape = tuple(shape)
    cond = check_conditioner_inputs(conditioner, shape, cond, name)
    first = _check_noise(noise, shape, name)
    step, dtype = _checked_step(step, params, noise, shape, conditioner.params_per_dim, name)
    template = first.astype(dtype)
    if method == "auto" and conditioner.made is not None:
        return made_solve(conditioner.made, params, step, noise, cond, template)
    return _solve_by_passes(conditioner, params, step, noise, cond, template)
