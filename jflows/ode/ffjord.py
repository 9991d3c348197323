"""FFJORD: a continuous normalizing flow as a bijector, solved with diffrax.

Grathwohl et al. 2019, "FFJORD: Free-form continuous dynamics for scalable reversible
generative models"; Chen et al. 2018, "Neural ordinary differential equations".

A vector field ``f(t, z)`` (a Flax module) defines the map ``x -> z(t1)`` with
``z(t0) = x`` and ``dz/dt = f(t, z)``. Its log-det is the integral of the trace of the
Jacobian (the instantaneous change of variables), solved jointly with the state::

    d/dt [z, L] = [f(t, z), tr(df/dz)],   [z, L](t0) = [x, 0]
    forward(x) = z(t1),   log|det d forward / dx| = L(t1) = int_{t0}^{t1} tr(df/dz) dt

``inverse`` solves the same system from ``t1`` back to ``t0``, so its log-det is
``int_{t1}^{t0} tr(df/dz) dt``, minus the forward one at the pair. The whole batch is one
ODE solve (one adaptive step size for the batch, as in FFJORD's reference code and
TFP), so a batch of ``B`` events costs one solve, not ``B``.

The block has no state (``()``). What a solve reports -- steps, function evaluations, the
RNODE integrals and, for a failed solve, why it failed -- is a
:class:`~jflows.ode.SolveInfo` in the bijector contract's info channel
(``forward_with_info`` / ``inverse_with_info``; see :mod:`jflows.ode.info`).
"""

from __future__ import annotations

import functools

import diffrax
import flax
import jax
import jax.numpy as jnp
from flax import linen as nn

from jflows.bijectors.base import (
    EMPTY,
    Bijector,
    batch_shape_of,
    check_event_rank,
    without_info,
)
from jflows.conditioning import check_cond, cond_batch_shape, normalize_cond_shape
from jflows.ode.info import (
    NONFINITE,
    NONFINITE_INPUT,
    SUCCESSFUL,
    SolveInfo,
    function_evaluations,
)
from jflows.ode.regularization import RNODE
from jflows.ode.trace import TraceEstimator, exact_trace

DEFAULT_RTOL = 1e-5
DEFAULT_ATOL = 1e-5


def _apply_function(vector_field: nn.Module, conditional: bool):
    """``(params, t, z, cond) -> f`` for a conditional or unconditional Flax vector field."""
    if conditional:
        return lambda params, t, z, cond: vector_field.apply(params, t, z, cond)
    return lambda params, t, z, cond: vector_field.apply(params, t, z)


def _build_ode_term(vector_field, conditional, estimator: TraceEstimator, event_ndims: int,
                    regularize: bool, sign: float) -> diffrax.ODETerm:
    """The augmented vector field ``(z, L[, K, B]) -> (f, tr J[, ||f||^2, ||J||_F^2])``.

    ``sign`` is the direction of integration, so the RNODE integrals accumulate
    ``int ||f||^2 |dt|`` (positive) in either direction. ``args`` of the solve are
    ``(params, cond, noise)``, so gradients w.r.t. params flow through any adjoint.
    """
    apply = _apply_function(vector_field, conditional)
    event_axes = tuple(range(-event_ndims, 0))

    def augmented(t, y, args):
        params, cond, noise = args
        z = y[0]
        f, trace, frobenius_sq = estimator.evaluate(
            lambda v: apply(params, t, v, cond), z, noise, event_ndims
        )
        if not regularize:
            return f, trace
        kinetic = jnp.sum(jnp.square(f), axis=event_axes)
        return f, trace, sign * kinetic, sign * frobenius_sq

    return diffrax.ODETerm(augmented)


_cached_ode_term = functools.lru_cache(maxsize=256)(_build_ode_term)


def _ode_term(*config) -> diffrax.ODETerm:
    """The ODE term of a configuration, the same object for equal configurations.

    diffrax compiles each solve under ``equinox.filter_jit``, which recognises a term it
    has seen before: equal (hashable) vector fields and settings then share one
    compilation, so eager calls and freshly built bijectors do not recompile. Flax
    modules with unhashable attributes (e.g. a list) get a new term.
    """
    try:
        hash(config)
    except TypeError:
        return _build_ode_term(*config)
    return _cached_ode_term(*config)


def ffjord(
    vector_field: nn.Module,
    *,
    event_ndims: int = 1,
    cond_shape: tuple[int, ...] | None = None,
    t0: float = 0.0,
    t1: float = 1.0,
    solver: diffrax.AbstractSolver | None = None,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    dt0: float | None = None,
    max_steps: int = 4096,
    adjoint: diffrax.AbstractAdjoint | None = None,
    trace: TraceEstimator | None = None,
    eval_trace: TraceEstimator | None = None,
    regularization: RNODE | None = None,
) -> Bijector:
    """A continuous normalizing flow block (FFJORD) in the bijector contract.

    ``forward`` (base -> data) solves ``dz/dt = f(t, z)`` from ``t0`` to ``t1`` and
    returns ``log|det J| = int_{t0}^{t1} tr(df/dz) dt``; ``inverse`` solves back from
    ``t1`` to ``t0``. See the module docstring for the ODE.

    Args:
      vector_field: a Flax module called as ``f(t, z)`` (or ``f(t, z, cond)`` when
        ``cond_shape`` is set) on a batch ``z`` of shape ``batch + event`` and a scalar
        ``t``, returning ``dz/dt`` of ``z``'s shape; it must treat events independently.
        See :mod:`jflows.nets.odenet`. Its variables are the block's params.
      event_ndims: number of trailing event axes (1: vectors).
      cond_shape: per-event shape of ``cond`` for a conditional vector field (``init``
        needs it to build the network); ``None`` for an unconditional one.
      t0, t1: integration interval (FFJORD: ``0, 1``; ``t1 < t0`` is allowed).
      solver: a diffrax solver; default ``diffrax.Dopri5()`` (FFJORD's ``dopri5``).
      stepsize_controller: default ``diffrax.PIDController(rtol=1e-5, atol=1e-5)``, the
        paper's tolerances. A fast option for training: ``diffrax.Tsit5()`` with
        ``PIDController(rtol=1e-3, atol=1e-3)``, or a fixed grid
        ``diffrax.ConstantStepSize()`` with ``dt0`` (see BENCHMARKS.md for timings).
      dt0: first step size (required by ``ConstantStepSize``), given as a positive
        number for ``t0 -> t1``; the inverse uses its negation. ``None``: diffrax's
        choice (on diffrax 0.7 an ODE's first step is ``0.01``, then the controller's).
      max_steps: the solve fails beyond this many steps. A failed solve (too many steps,
        or non-finite values) returns NaN values and log-dets instead of raising, so that
        :func:`jflows.train.fit`'s non-finite guard skips such a training step; its info's
        ``result`` says why (:func:`~jflows.ode.explain_failures`).
      adjoint: how gradients flow through the solve; default
        ``diffrax.RecursiveCheckpointAdjoint()`` (differentiates the solver's own
        operations: exact gradients of the computed solution).
        ``diffrax.BacksolveAdjoint()`` is the paper's continuous adjoint (memory
        independent of the number of steps, gradients accurate to the tolerance).
        Under ``shard_map``/``pmap`` (as in ``jflows.train.fit``) differentiating
        ``RecursiveCheckpointAdjoint`` fails on JAX 0.10 with equinox 0.13 (diffrax
        issue #765); use ``BacksolveAdjoint()`` or ``DirectAdjoint()`` there.
      trace: the Jacobian-trace estimator for ``train=True`` calls:
        :func:`~jflows.ode.exact_trace` (default) or
        :func:`~jflows.ode.hutchinson_trace`. Hutchinson draws its noise once per solve
        from the call's ``key``, which is then required.
      eval_trace: the estimator for ``train=False`` calls (evaluation and sampling);
        default ``trace``. Pass ``exact_trace()`` to train with Hutchinson and report
        exact, low-variance test log-likelihoods.
      regularization: :func:`~jflows.ode.rnode` weights; the RNODE integrals are solved
        alongside in ``train=True`` calls and reported in the info's ``penalty`` (add
        :func:`~jflows.ode.regularization_penalty` of the info to the loss).

    Returns:
      A :class:`~jflows.bijectors.Bijector` whose params are the vector field's Flax
      variables (in the dtype of the ``x`` given to ``init``), whose state is empty
      (``()``), and whose ``forward_with_info`` / ``inverse_with_info`` return
      ``(y, log_det, (), info)`` with ``info`` a :class:`~jflows.ode.SolveInfo` of the
      solve (``forward`` / ``inverse`` drop it).
      ``cond_shape`` is set on the bijector. Read infos with
      :func:`~jflows.ode.solve_metrics` and :func:`~jflows.ode.explain_failures`.
    """
    solver = diffrax.Dopri5() if solver is None else solver
    if stepsize_controller is None:
        stepsize_controller = diffrax.PIDController(rtol=DEFAULT_RTOL, atol=DEFAULT_ATOL)
    adjoint = diffrax.RecursiveCheckpointAdjoint() if adjoint is None else adjoint
    trace = exact_trace() if trace is None else trace
    eval_trace = trace if eval_trace is None else eval_trace
    regularization = RNODE() if regularization is None else regularization
    _validate_config(vector_field, event_ndims, t0, t1, solver, stepsize_controller, dt0,
                     max_steps, adjoint, trace, eval_trace, regularization)
    cond_shape = normalize_cond_shape(cond_shape, "ffjord")

    apply = _apply_function(vector_field, cond_shape is not None)

    def init(key, x):
        check_event_rank(x, event_ndims, "ffjord.init")
        event = jnp.zeros(tuple(x.shape[len(x.shape) - event_ndims :]), x.dtype)
        cond = None if cond_shape is None else jnp.zeros(cond_shape, x.dtype)
        t = jnp.asarray(t0, x.dtype)
        inputs = (t, event) if cond is None else (t, event, cond)
        params = _as_dtype(vector_field.init(key, *inputs), x.dtype)
        _check_vector_field(apply, params, event, cond, "ffjord.init")
        return params, EMPTY

    def broadcast_cond(x, cond, name):
        """``(x, cond)`` checked by :func:`~jflows.conditioning.check_cond` and broadcast to
        their common batch shape (one solve for the batch needs one per event)."""
        check_event_rank(x, event_ndims, name)
        cond = check_cond(cond, cond_shape, None, name)
        if cond is None:
            return x, None
        batch_shape = cond_batch_shape(cond, cond_shape, batch_shape_of(x, event_ndims), name)
        event_shape = tuple(x.shape[x.ndim - event_ndims :])
        return (jnp.broadcast_to(x, batch_shape + event_shape),
                jnp.broadcast_to(cond, batch_shape + cond_shape))

    def solve(params, state, x, cond, train, key, direction):
        name = f"ffjord.{direction}"
        _check_empty_state(state, name)
        x, cond = broadcast_cond(x, cond, name)
        batch_shape = batch_shape_of(x, event_ndims)
        _check_vector_field(apply, params, x, cond, name)
        estimator = trace if train else eval_trace
        regularize = train and regularization.active
        noise = None
        if estimator.needs_key:
            if key is None:
                raise ValueError(
                    f"{name}: the {estimator.name} trace estimator draws its noise from the "
                    "call's key, but key=None. Pass key=jax.random.key(...) to "
                    "forward/inverse (or to transformed(...).log_prob_and_state / sample), or "
                    "build the block with trace=exact_trace() (eval_trace=exact_trace() for "
                    "train=False calls)."
                )
            noise = estimator.sample_noise(key, x.shape, x.dtype)
        start, end = (t0, t1) if direction == "forward" else (t1, t0)
        sign = 1.0 if end > start else -1.0
        first_step = None if dt0 is None else sign * abs(dt0)
        term = _ode_term(vector_field, cond_shape is not None, estimator, event_ndims,
                         regularize, sign)
        finite_inputs = _all_finite((x, cond, params))
        x, cond, params = _zeros_unless(finite_inputs, (x, cond, params))
        zeros = jnp.zeros(batch_shape, x.dtype)
        y0 = (x, zeros, zeros, zeros) if regularize else (x, zeros)
        solution = diffrax.diffeqsolve(
            term, solver, start, end, first_step, y0,
            args=(params, cond, noise),
            stepsize_controller=stepsize_controller,
            adjoint=adjoint,
            max_steps=max_steps,
            throw=False,
        )
        final = jax.tree_util.tree_map(lambda a: a[-1], solution.ys)
        result = _result(solution, finite_inputs, final)
        final = jax.tree_util.tree_map(
            lambda a: jnp.where(result != SUCCESSFUL, jnp.nan, a), final)
        info = _solve_info(solver, solution, result, final[2:], regularization, x.dtype)
        return final[0], final[1], EMPTY, info

    def forward_with_info(params, state, x, *, cond=None, train=False, key=None):
        return solve(params, state, x, cond, train, key, "forward")

    def inverse_with_info(params, state, y, *, cond=None, train=False, key=None):
        return solve(params, state, y, cond, train, key, "inverse")

    return Bijector(init, without_info(forward_with_info), without_info(inverse_with_info),
                    event_ndims, None, cond_shape, forward_with_info, inverse_with_info)


def _solve_info(solver, solution: diffrax.Solution, result, integrals, regularization: RNODE,
                dtype) -> SolveInfo:
    """The :class:`SolveInfo` of a solve; ``integrals`` are the per-event RNODE integrals
    ``(K, B)`` (empty when the solve did not regularise), batch-averaged and weighted."""
    num_steps = jnp.asarray(solution.stats["num_steps"], jnp.int32)
    zero = jnp.zeros((), dtype)
    info = SolveInfo(num_steps, function_evaluations(solver, num_steps), result, zero, zero,
                     zero)
    if not integrals:
        return info
    kinetic, frobenius = jnp.mean(integrals[0]), jnp.mean(integrals[1])
    penalty = regularization.kinetic_weight * kinetic + regularization.jacobian_weight * frobenius
    return info._replace(kinetic_energy=kinetic, jacobian_frobenius=frobenius,
                         penalty=penalty.astype(dtype))


def _as_dtype(params, dtype):
    """The floating-point leaves of ``params`` in ``dtype`` (Flax creates float32 params
    whatever the input; a float64 model needs float64 params)."""
    return jax.tree_util.tree_map(
        lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, params)


def _all_finite(tree) -> jax.Array:
    """Whether every floating-point entry of ``tree`` is finite (a boolean scalar)."""
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(tree)
              if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def _zeros_unless(ok, tree):
    """``tree`` where ``ok``, else its floating-point leaves zeroed.

    A solve from non-finite data or params fails anyway; solving from zeros instead takes
    a few steps where an adaptive solver would reject steps until ``max_steps``.
    """

    def keep(leaf):
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
            return leaf
        return jnp.where(ok, leaf, jnp.zeros_like(leaf))

    return jax.tree_util.tree_map(keep, tree)


def _result(solution: diffrax.Solution, finite_inputs, final) -> jax.Array:
    """The solve's ``diffrax.RESULTS`` code (int32), with non-finite values named.

    ``nonfinite_input`` when the data, cond or params held NaN or inf
    (``finite_inputs`` false); otherwise diffrax's code when it failed; otherwise
    ``nonfinite`` when the ``final`` values are not finite (a fixed-step solve does not
    check them).
    """
    code = jnp.asarray(solution.result._value, jnp.int32)
    code = jnp.where((code == SUCCESSFUL) & ~_all_finite(final), NONFINITE, code)
    return jnp.where(finite_inputs, code, NONFINITE_INPUT).astype(jnp.int32)


def _check_empty_state(state, name):
    """FFJORD has no state: refuse a non-empty one (e.g. a record from an older API)."""
    if jax.tree_util.tree_leaves(state):
        raise ValueError(
            f"{name}: an FFJORD block has no state; pass () as init returns it (its solve "
            f"statistics come back as info from forward_with_info / inverse_with_info or "
            f"log_prob_and_state), got a state with leaves "
            f"{jax.tree_util.tree_structure(state)}.")


def _check_vector_field(apply, params, z, cond, name):
    """At trace time: the vector field accepts ``z`` and returns ``z``'s shape."""
    abstract = lambda a: None if a is None else jax.ShapeDtypeStruct(a.shape, a.dtype)  # noqa: E731
    try:
        out = jax.eval_shape(apply, params, jax.ShapeDtypeStruct((), z.dtype), abstract(z),
                             abstract(cond))
    except (flax.errors.FlaxError, TypeError, ValueError) as err:
        raise ValueError(
            f"{name}: the vector field cannot be applied to an input of shape "
            f"{tuple(z.shape)} (cond shape {None if cond is None else tuple(cond.shape)}) "
            f"with these params: {err}"
        ) from err
    if tuple(out.shape) != tuple(z.shape):
        raise ValueError(
            f"{name}: the vector field must return dz/dt with the input's shape "
            f"{tuple(z.shape)}, got shape {tuple(out.shape)}."
        )


def _validate_config(vector_field, event_ndims, t0, t1, solver, stepsize_controller, dt0,
                     max_steps, adjoint, trace, eval_trace, regularization):
    checks = [
        (isinstance(vector_field, nn.Module), "vector_field must be a flax.linen Module",
         type(vector_field).__name__),
        (isinstance(event_ndims, int) and event_ndims >= 1, "event_ndims must be an int >= 1",
         event_ndims),
        (float(t0) != float(t1), "t0 and t1 must differ", (t0, t1)),
        (isinstance(solver, diffrax.AbstractSolver), "solver must be a diffrax solver",
         type(solver).__name__),
        (isinstance(stepsize_controller, diffrax.AbstractStepSizeController),
         "stepsize_controller must be a diffrax step-size controller",
         type(stepsize_controller).__name__),
        (dt0 is None or float(dt0) > 0, "dt0 must be None or > 0", dt0),
        (not isinstance(stepsize_controller, diffrax.ConstantStepSize) or dt0 is not None,
         "a ConstantStepSize controller needs dt0", dt0),
        (isinstance(max_steps, int) and max_steps > 0, "max_steps must be an int > 0",
         max_steps),
        (isinstance(adjoint, diffrax.AbstractAdjoint), "adjoint must be a diffrax adjoint",
         type(adjoint).__name__),
        (isinstance(trace, TraceEstimator), "trace must be exact_trace() or hutchinson_trace()",
         type(trace).__name__),
        (isinstance(eval_trace, TraceEstimator),
         "eval_trace must be exact_trace(), hutchinson_trace() or None",
         type(eval_trace).__name__),
        (isinstance(regularization, RNODE), "regularization must be rnode(...) or None",
         type(regularization).__name__),
    ]
    for ok, expected, got in checks:
        if not ok:
            raise ValueError(f"ffjord: {expected}, got {got!r}.")
