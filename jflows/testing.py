"""The shared checks every jflows bijector passes -- usable on your own bijectors too.

Describe a bijector with a :class:`BijectorCase` and run :func:`check_bijector` (all
checks) or one ``check_*`` function. Each check raises ``AssertionError`` with a message
that names the check and the numbers that disagree::

    from jflows.testing import BijectorCase, check_bijector
    check_bijector(BijectorCase("my_flow", lambda: my_flow(...), event_shape=(4,)))

The checks:

* ``round_trip``: ``f^{-1}(f(x)) = x`` and ``f(f^{-1}(y)) = y``.
* ``inverse_log_det``: the inverse's log-det at ``f(x)`` is minus the forward's at ``x``.
* ``log_det_vs_jacobian``: the forward log-det equals ``log|det|`` of the dense Jacobian
  from :func:`jax.jacobian`, both computed in float64.
* ``jit_matches_eager``, ``batch_matches_vmap`` (batched call == vmap over single events).
* ``eval_shape_init``: ``jax.eval_shape(init)`` on a :class:`jax.ShapeDtypeStruct` gives
  the shapes and dtypes of the real ``init``.
* ``state_after_train``: a ``train=True`` call returns state with the same structure,
  shapes and dtypes.
* ``grad_finite``: the gradient of a log-likelihood-like loss w.r.t. params is finite.
* ``finite_at_edges``: finite outputs and log-dets on inputs near the domain's edges.
* ``bad_shapes``: inputs with too few axes (and the case's ``bad_inputs``) raise a
  ``ValueError`` at trace time, under ``jit``, whose message names the shapes.
* ``transformed``: the bijector inside :func:`jflows.distributions.transformed` over bases
  of the bijector's own event rank, of higher ranks (the log-det summed over the extra
  axes, TFP's rule) and, for ``scalar_base`` cases, a scalar base. ``log_prob`` equals the
  closed form ``log p_base(f^{-1}(y)) + log|det d f^{-1}/dy|`` with the Jacobian of the
  whole event from :func:`jax.jacobian` in float64 (independent of the bijector's log-det
  and of the rank reconciliation); ``sample_and_log_prob`` agrees with ``log_prob``; and
  for a scalar base ``cdf`` lies in [0, 1] and ``d cdf / dy`` equals the density (which
  fails if a decreasing bijector's ``cdf`` were ``F`` instead of ``1 - F``).

Parameters are perturbed away from their initial values (``param_noise``) so that
bijectors which start at the identity are tested away from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jflows.bijectors.base import Bijector, output_event_ndims
from jflows.distributions import standard_normal, transformed

Sampler = Callable[[jax.Array, tuple[int, ...]], jax.Array]


def _normal_sampler(key, shape):
    return jax.random.normal(key, shape)


@dataclasses.dataclass(frozen=True)
class BijectorCase:
    """A bijector and the inputs to check it on.

    Attributes:
      name: test id.
      make: builds the bijector (called fresh for each check).
      event_shape: the event shape of the input (``forward``'s domain).
      batch_shape: leading batch axes of the checked input.
      sample_x: ``(key, shape) -> x`` in ``forward``'s domain (default standard normal).
      cond_shape: per-event shape of a conditioning input, or ``None``.
      needs_key: pass a PRNG key to every call (stochastic bijectors).
      param_noise: std of Gaussian noise added to every float param after ``init``.
      forward_edges / inverse_edges: single events near the domain's edges of
        ``forward`` / ``inverse``; outputs and log-dets there must be finite.
      bad_inputs: ``(shape, why)`` pairs whose calls must raise ``ValueError``.
      stochastic_log_det: the log-det is an estimate that depends on the key's noise
        per call (e.g. Hutchinson), so it is excluded from the batch-vs-vmap check.
      trainable_state: ``train=True`` changes state (batch norm); used by
        ``state_after_train`` and to skip ``batch_matches_vmap`` in train mode.
      rtol / atol: tolerances of the float32 comparisons.
      jacobian_atol: tolerance of the float64 Jacobian comparison.
      base: ``event_shape -> DensityModel`` whose support is ``forward``'s domain, for the
        ``transformed`` check (default standard normal; e.g. a uniform base for a bijector
        defined on the unit interval).
      higher_rank_bases: for ``transformed``, also a base with extra leading event axes
        (``(2,) + event_shape``; ``(2, 2) + event_shape``, an image, for elementwise ones).
      scalar_base: for ``transformed``, also a scalar base (elementwise bijectors whose
        params do not fix the event shape); adds the ``cdf`` checks.
      checks: the names of the checks that apply (default all).
    """

    name: str
    make: Callable[[], Bijector]
    event_shape: tuple[int, ...]
    batch_shape: tuple[int, ...] = (4,)
    sample_x: Sampler = _normal_sampler
    cond_shape: tuple[int, ...] | None = None
    needs_key: bool = False
    param_noise: float = 0.1
    forward_edges: np.ndarray | None = None
    inverse_edges: np.ndarray | None = None
    bad_inputs: Sequence[tuple[tuple[int, ...], str]] = ()
    stochastic_log_det: bool = False
    trainable_state: bool = False
    rtol: float = 1e-4
    atol: float = 1e-4
    jacobian_atol: float = 1e-6
    base: Callable | None = None
    higher_rank_bases: bool = True
    scalar_base: bool = False
    checks: Sequence[str] | None = None

    def __repr__(self):  # short test ids
        return self.name


@dataclasses.dataclass
class CaseSetup:
    """What every check starts from: the case's bijector, its params (with the case's
    noise) and state, the checked input ``x`` and the call's keyword arguments."""

    bijector: Bijector
    params: object
    state: object
    x: jax.Array
    kwargs: dict


def perturbed(params, key, noise):
    """``params`` with ``noise`` times standard normal draws added to every float leaf (off
    an identity initialisation, so that checks see a non-trivial bijector)."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, max(len(leaves), 1))
    out = [
        leaf + noise * jax.random.normal(k, leaf.shape, leaf.dtype)
        if jnp.issubdtype(leaf.dtype, jnp.floating)
        else leaf
        for leaf, k in zip(leaves, keys, strict=False)
    ]
    return jax.tree_util.tree_unflatten(treedef, out)


def setup_case(case: BijectorCase, seed: int = 0, dtype=jnp.float32) -> CaseSetup:
    """The bijector, params, state, input and keyword arguments the checks run a case on
    (public so that other checks, e.g. the interop bridges', use exactly the same)."""
    key_init, key_noise, key_x, key_cond, key_call = jax.random.split(jax.random.key(seed), 5)
    bijector = case.make()
    x = case.sample_x(key_x, case.batch_shape + tuple(case.event_shape)).astype(dtype)
    params, state = bijector.init(key_init, x)
    params = perturbed(params, key_noise, case.param_noise)
    kwargs = {}
    if case.cond_shape is not None:
        cond_shape = case.batch_shape + tuple(case.cond_shape)
        kwargs["cond"] = jax.random.normal(key_cond, cond_shape, dtype)
    if case.needs_key:
        kwargs["key"] = key_call
    return CaseSetup(bijector, params, state, x, kwargs)


def _fail(case, check, message):
    raise AssertionError(f"[{case.name}] {check}: {message}")


def _assert_close(case, check, what, actual, expected, rtol, atol):
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        _fail(case, check, f"{what}: shape {actual.shape} != expected {expected.shape}")
    if not np.allclose(actual, expected, rtol=rtol, atol=atol):
        err = np.max(np.abs(actual - expected))
        _fail(case, check, f"{what}: max abs difference {err:.3g} (rtol={rtol}, atol={atol})")


def _applies(case, check):
    return case.checks is None or check in case.checks


# --------------------------------------------------------------------------------------
# The checks.
# --------------------------------------------------------------------------------------


def check_round_trip(case: BijectorCase) -> None:
    """``inverse(forward(x)) == x`` and ``forward(inverse(y)) == y``."""
    s = setup_case(case)
    b = s.bijector
    y, _, _ = b.forward(s.params, s.state, s.x, **s.kwargs)
    x_back, _, _ = b.inverse(s.params, s.state, y, **s.kwargs)
    _assert_close(case, "round_trip", "inverse(forward(x)) vs x", x_back, s.x, case.rtol, case.atol)
    y_again, _, _ = b.forward(s.params, s.state, x_back, **s.kwargs)
    _assert_close(case, "round_trip", "forward(inverse(y)) vs y", y_again, y, case.rtol, case.atol)


def check_inverse_log_det(case: BijectorCase) -> None:
    """``inverse log-det at f(x) == -forward log-det at x``, with the batch shape."""
    s = setup_case(case)
    b = s.bijector
    y, fwd_log_det, _ = b.forward(s.params, s.state, s.x, **s.kwargs)
    _, inv_log_det, _ = b.inverse(s.params, s.state, y, **s.kwargs)
    expected_shape = tuple(s.x.shape[: s.x.ndim - b.event_ndims])
    if fwd_log_det.shape != expected_shape:
        _fail(
            case,
            "inverse_log_det",
            f"forward log_det has shape {fwd_log_det.shape}, expected the batch shape "
            f"{expected_shape} (input {tuple(s.x.shape)}, event_ndims={b.event_ndims})",
        )
    _assert_close(
        case, "inverse_log_det", "inverse log_det vs -forward log_det",
        inv_log_det, -fwd_log_det, case.rtol, case.atol,
    )


def dense_log_det(fn: Callable, event: jax.Array) -> jax.Array:
    """``log|det J|`` of ``fn`` at one event from the dense Jacobian (:func:`jax.jacobian`)."""
    size = event.size
    out_size = jax.eval_shape(fn, event).size
    if out_size != size:
        raise ValueError(f"dense_log_det: output size {out_size} != input size {size}.")
    jac = jax.jacobian(lambda v: fn(v.reshape(event.shape)).reshape(size))(event.reshape(size))
    return jnp.linalg.slogdet(jac)[1]


def check_log_det_vs_jacobian(case: BijectorCase, num_events: int = 3) -> None:
    """Forward log-det == ``slogdet(jax.jacobian(forward))`` per event, in float64.

    The Jacobian is taken over the case's whole event, so a bijector with fewer event
    axes is checked against the sum of its log-dets over the remaining ones.
    """
    with jax.enable_x64(True):
        s = setup_case(case, dtype=jnp.float64)
        to64 = lambda t: jax.tree_util.tree_map(  # noqa: E731
            lambda a: a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a, t
        )
        params, state = to64(s.params), to64(s.state)
        b = s.bijector
        extra_axes = len(case.event_shape) - b.event_ndims
        flat_x = s.x.reshape((-1,) + tuple(case.event_shape))
        cond = s.kwargs.get("cond")
        flat_cond = None if cond is None else cond.reshape((-1,) + tuple(case.cond_shape))
        for i in range(min(num_events, flat_x.shape[0])):
            kwargs = dict(s.kwargs)
            if flat_cond is not None:
                kwargs["cond"] = flat_cond[i]

            def fn(e, kwargs=kwargs):
                return b.forward(params, state, e, **kwargs)[0]

            expected = dense_log_det(fn, flat_x[i])
            log_det = b.forward(params, state, flat_x[i], **kwargs)[1]
            actual = jnp.sum(log_det) if extra_axes else log_det
            _assert_close(
                case, "log_det_vs_jacobian", f"event {i}: log_det vs slogdet(jacobian)",
                actual, expected, 1e-7, case.jacobian_atol,
            )


def check_jit_matches_eager(case: BijectorCase) -> None:
    """Jitted forward/inverse equal eager ones."""
    s = setup_case(case)
    b = s.bijector
    for direction in ("forward", "inverse"):
        fn = getattr(b, direction)
        inp = s.x if direction == "forward" else b.forward(s.params, s.state, s.x, **s.kwargs)[0]
        eager = fn(s.params, s.state, inp, **s.kwargs)
        jitted = jax.jit(lambda p, st, v, kw, fn=fn: fn(p, st, v, **kw))(
            s.params, s.state, inp, s.kwargs
        )
        for what, a, e in (("value", jitted[0], eager[0]), ("log_det", jitted[1], eager[1])):
            _assert_close(case, "jit_matches_eager", f"{direction} {what}", a, e, 1e-5, 1e-5)


def check_batch_matches_vmap(case: BijectorCase) -> None:
    """A batched call equals ``jax.vmap`` of the call on single events."""
    s = setup_case(case)
    b = s.bijector
    n_batch = len(case.batch_shape)
    kwargs = dict(s.kwargs)
    cond = kwargs.pop("cond", None)
    key = kwargs.pop("key", None)
    for direction in ("forward", "inverse"):
        fn = getattr(b, direction)
        inp = s.x if direction == "forward" else b.forward(s.params, s.state, s.x, **s.kwargs)[0]
        batched = fn(s.params, s.state, inp, cond=cond, key=key)

        def single(v, c, fn=fn):
            return fn(s.params, s.state, v, cond=c, key=key)[:2]

        mapped = single
        for _ in range(n_batch):
            mapped = jax.vmap(mapped, in_axes=(0, None if cond is None else 0))
        vmapped = mapped(inp, cond)
        _assert_close(case, "batch_matches_vmap", f"{direction} value", batched[0], vmapped[0],
                      1e-5, 1e-5)
        if not case.stochastic_log_det:
            _assert_close(case, "batch_matches_vmap", f"{direction} log_det", batched[1],
                          vmapped[1], 1e-5, 1e-5)


def _shapes(tree):
    return jax.tree_util.tree_map(lambda a: (tuple(a.shape), jnp.dtype(a.dtype)), tree)


def check_eval_shape_init(case: BijectorCase) -> None:
    """``jax.eval_shape(init)`` on an abstract input matches the real ``init``."""
    s = setup_case(case)
    key = jax.random.key(0)
    abstract = jax.eval_shape(s.bijector.init, key, jax.ShapeDtypeStruct(s.x.shape, s.x.dtype))
    concrete = s.bijector.init(key, s.x)
    if _shapes(abstract) != _shapes(concrete):
        _fail(case, "eval_shape_init", f"{_shapes(abstract)} != {_shapes(concrete)}")


def check_state_after_train(case: BijectorCase) -> None:
    """``train=True`` calls keep the state's structure, shapes and dtypes."""
    s = setup_case(case)
    b = s.bijector
    kwargs = dict(s.kwargs, train=True)
    y, _, state_fwd = b.forward(s.params, s.state, s.x, **kwargs)
    _, _, state_inv = b.inverse(s.params, s.state, y, **kwargs)
    for direction, new in (("forward", state_fwd), ("inverse", state_inv)):
        if _shapes(new) != _shapes(s.state):
            _fail(case, "state_after_train",
                  f"{direction}: state {_shapes(new)} != initial {_shapes(s.state)}")
    if case.trainable_state:
        before = jax.tree_util.tree_leaves(s.state)
        after = jax.tree_util.tree_leaves(state_inv)
        if all(np.array_equal(a, c) for a, c in zip(before, after, strict=True)):
            _fail(case, "state_after_train", "inverse(train=True) did not update the state")


def check_grad_finite(case: BijectorCase) -> None:
    """``jax.grad`` of ``mean(-|z|^2/2 + log_det)`` (density direction) w.r.t. params is finite."""
    s = setup_case(case)
    b = s.bijector
    y = b.forward(s.params, s.state, s.x, **s.kwargs)[0]

    def loss(params):
        z, log_det, _ = b.inverse(params, s.state, y, **s.kwargs)
        return jnp.mean(-0.5 * jnp.sum(jnp.square(z)) + log_det)

    grads = jax.grad(loss)(s.params)
    for leaf in jax.tree_util.tree_leaves(grads):
        if not np.all(np.isfinite(leaf)):
            _fail(case, "grad_finite", f"non-finite gradient {np.asarray(leaf)}")


def check_finite_at_edges(case: BijectorCase) -> None:
    """Finite values and log-dets for inputs near the edges of the domains."""
    s = setup_case(case)
    b = s.bijector
    for direction, edges in (("forward", case.forward_edges), ("inverse", case.inverse_edges)):
        if edges is None:
            continue
        inp = jnp.asarray(edges, s.x.dtype)
        kwargs = dict(s.kwargs)
        if "cond" in kwargs:
            kwargs["cond"] = kwargs["cond"].reshape((-1,) + tuple(case.cond_shape))[0]
        out, log_det, _ = getattr(b, direction)(s.params, s.state, inp, **kwargs)
        for what, value in (("value", out), ("log_det", log_det)):
            if not np.all(np.isfinite(value)):
                _fail(case, "finite_at_edges",
                      f"{direction} {what} not finite at {np.asarray(edges)}: {np.asarray(value)}")


def _expect_value_error(case, what, call):
    try:
        jax.jit(call)()
    except ValueError as err:
        if "shape" not in str(err) and "axes" not in str(err):
            _fail(case, "bad_shapes", f"{what}: the error does not mention the shape: {err}")
        return
    except Exception as err:  # noqa: BLE001 -- any other error type is a failure here
        _fail(case, "bad_shapes", f"{what}: raised {type(err).__name__} instead of "
                                  f"ValueError: {err}")
    _fail(case, "bad_shapes", f"{what}: no error was raised")


def check_bad_shapes(case: BijectorCase) -> None:
    """Too few axes, and the case's ``bad_inputs``, raise a ValueError naming the shapes."""
    s = setup_case(case)
    b = s.bijector
    bad = list(case.bad_inputs)
    for direction, ndims in (("forward", b.event_ndims), ("inverse", output_event_ndims(b))):
        if ndims > 0:
            short = (2,) * (ndims - 1)
            bad.append((short, f"{direction} with {ndims - 1} axes", direction))
    for entry in bad:
        shape, why = entry[0], entry[1]
        directions = (entry[2],) if len(entry) > 2 else ("forward", "inverse")
        for direction in directions:
            fn = getattr(b, direction)
            v = jnp.zeros(shape, s.x.dtype)
            _expect_value_error(
                case, f"{direction} on shape {shape} ({why})",
                lambda fn=fn, v=v: fn(s.params, s.state, v, **s.kwargs)[0],
            )


def transformed_base_shapes(case: BijectorCase) -> list[tuple[int, ...]]:
    """The base event shapes the ``transformed`` check puts ``case``'s bijector over."""
    shapes = [tuple(case.event_shape)]
    if case.higher_rank_bases and case.cond_shape is None:
        extra = (2, 2) if case.make().event_ndims == 0 else (2,)  # elementwise: an image
        shapes.append((*extra, *case.event_shape))
    if case.scalar_base:
        shapes.append(())
    return shapes


def _closed_form_log_prob(flow, params, state, y_event, kwargs):
    """``log p_base(f^{-1}(y)) + log|det d f^{-1}/dy|`` of one event, dense Jacobian."""
    def to_base(v):
        return flow.bijector.inverse(params["bijector"], state["bijector"], v, **kwargs)[0]

    x_event = to_base(y_event)
    base_log_prob = flow.base.log_prob(params["base"], state["base"], x_event)
    return base_log_prob + dense_log_det(to_base, y_event)


def check_transformed(case: BijectorCase, num_events: int = 2) -> None:
    """``transformed(base, bijector)`` over several base ranks against the closed form."""
    for base_shape in transformed_base_shapes(case):
        _check_transformed_over(case, base_shape, num_events)


def _transformed_values(case, flow, base_shape, num_events):
    """Everything the ``transformed`` check compares, from one jitted function (float64).

    ``log_prob`` of ``y = f(x)``, the closed form of its first ``num_events`` events,
    ``sample_and_log_prob`` and ``log_prob`` of those samples, and for a scalar base the
    ``cdf`` with its slope."""
    key_init, key_noise, key_x, key_cond, key_call = jax.random.split(jax.random.key(1), 5)
    params, state = flow.init(key_init, jnp.float64)
    params = perturbed(params, key_noise, case.param_noise)
    batch_shape = tuple(case.batch_shape)
    x = case.sample_x(key_x, batch_shape + tuple(base_shape)).astype(jnp.float64)
    cond = (None if case.cond_shape is None else
            jax.random.normal(key_cond, batch_shape + tuple(case.cond_shape), jnp.float64))
    key = key_call if case.needs_key else None
    scalar = base_shape == () and case.cond_shape is None

    @jax.jit
    def values(params, state, x, cond, key_call):
        kwargs = {"cond": cond, "key": key}
        out = {"y": flow.bijector.forward(params["bijector"], state["bijector"], x, **kwargs)[0]}
        out["log_prob"] = flow.log_prob(params, state, out["y"], **kwargs)
        flat_y = out["y"].reshape((-1, *flow.event_shape))[:num_events]
        flat_cond = None if cond is None else cond.reshape((-1, *case.cond_shape))[:num_events]
        out["expected"] = jax.vmap(
            lambda v, c: _closed_form_log_prob(flow, params, state, v, {"cond": c, "key": key})
        )(flat_y, flat_cond)
        out["samples"], out["sample_log_prob"] = flow.sample_and_log_prob(
            params, state, key_call, batch_shape, cond=cond)
        out["again"] = flow.log_prob(params, state, out["samples"], **kwargs)
        if scalar:
            out["cdf"] = flow.cdf(params, state, out["y"])
            out["slope"] = jax.vmap(jax.grad(lambda v: flow.cdf(params, state, v)))(
                out["y"].reshape(-1))
        return out

    return values(params, state, x, cond, key_call)


def _check_transformed_over(case, base_shape, num_events):
    label = f"base event shape {base_shape}"
    make_base = case.base or standard_normal
    batch_shape = tuple(case.batch_shape)
    with jax.enable_x64(True):
        flow = transformed(make_base(base_shape), case.make(), cond_shape=case.cond_shape)
        out = _transformed_values(case, flow, base_shape, num_events)
    for what in ("y", "samples"):
        if tuple(out[what].shape) != batch_shape + tuple(flow.event_shape):
            _fail(case, "transformed", f"{label}: {what} of shape {tuple(out[what].shape)}, "
                  f"expected batch {batch_shape} + the model's event shape {flow.event_shape}")
    if tuple(out["log_prob"].shape) != batch_shape:
        _fail(case, "transformed", f"{label}: log_prob has shape {tuple(out['log_prob'].shape)}, "
              f"expected the batch shape {batch_shape}")
    if case.stochastic_log_det:  # estimates with independent noise: nothing to compare
        return
    head = out["log_prob"].reshape(-1)[: out["expected"].shape[0]]
    _assert_close(case, "transformed", f"{label}: log_prob vs closed form", head,
                  out["expected"], 1e-7, case.jacobian_atol)
    _assert_close(case, "transformed", f"{label}: sample_and_log_prob vs log_prob",
                  out["sample_log_prob"], out["again"], case.rtol, case.atol)
    if "cdf" in out:
        cdf = np.asarray(out["cdf"])
        if not np.all((cdf >= 0) & (cdf <= 1)):
            _fail(case, "transformed", f"cdf outside [0, 1]: {cdf}")
        _assert_close(case, "transformed", "d cdf / dy vs exp(log_prob)", out["slope"],
                      np.exp(np.asarray(out["log_prob"])).reshape(-1), 1e-6, 1e-9)


CHECKS: dict[str, Callable[[BijectorCase], None]] = {
    "round_trip": check_round_trip,
    "inverse_log_det": check_inverse_log_det,
    "log_det_vs_jacobian": check_log_det_vs_jacobian,
    "jit_matches_eager": check_jit_matches_eager,
    "batch_matches_vmap": check_batch_matches_vmap,
    "eval_shape_init": check_eval_shape_init,
    "state_after_train": check_state_after_train,
    "grad_finite": check_grad_finite,
    "finite_at_edges": check_finite_at_edges,
    "bad_shapes": check_bad_shapes,
    "transformed": check_transformed,
}


def check_bijector(case: BijectorCase) -> None:
    """Run every check that applies to ``case``."""
    for name, check in CHECKS.items():
        if _applies(case, name):
            check(case)
