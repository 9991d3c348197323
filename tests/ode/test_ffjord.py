"""FFJORD: closed forms, the dense Jacobian, round trips, gradients, errors, stacks, and
the solve info (steps, NFE, RNODE integrals, why a solve failed) in the info channel."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.linalg

import jflows.bijectors as jb
from jflows.distributions import standard_normal, transformed
from jflows.nets.odenet import ConcatTimeMLP
from jflows.ode import (
    SolveInfo,
    describe_result,
    exact_trace,
    explain_failures,
    ffjord,
    hutchinson_trace,
    regularization_penalty,
    result_code,
    rnode,
    solve_metrics,
)
from jflows.testing import dense_log_det
from tests.ode.fields import CountingField, LinearField

KEY = jax.random.key(0)
FIXED_GRID = dict(solver=diffrax.Tsit5(), stepsize_controller=diffrax.ConstantStepSize(), dt0=0.1)


def tight(tol):
    return dict(stepsize_controller=diffrax.PIDController(rtol=tol, atol=tol))


def to64(tree):
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)


def perturbed(params, seed=1, scale=0.3):
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    noisy = [a + scale * jax.random.normal(k, a.shape, a.dtype)
             for a, k in zip(leaves, keys, strict=True)]
    return jax.tree_util.tree_unflatten(treedef, noisy)


def test_linear_field_matches_the_matrix_exponential():
    """f = z K on [0.5, 2]: y = x expm(1.5 K), log-det = 1.5 tr(K), both directions."""
    with jax.enable_x64(True):
        b = ffjord(LinearField(), t0=0.5, t1=2.0, **tight(1e-10))
        x = jax.random.normal(KEY, (2, 3, 4), jnp.float64)
        params, state = b.init(KEY, x)
        params = to64(params)
        kernel = params["params"]["Dense_0"]["kernel"]
        y, log_det, _ = b.forward(params, state, x)
        expected = x @ jnp.asarray(scipy.linalg.expm(1.5 * np.asarray(kernel)))
        np.testing.assert_allclose(y, expected, rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(log_det, np.full((2, 3), 1.5 * np.trace(kernel)), atol=1e-8)
        x_back, inv_log_det, _ = b.inverse(params, state, y)
        np.testing.assert_allclose(x_back, x, atol=1e-8)
        np.testing.assert_allclose(inv_log_det, -log_det, atol=1e-8)


@pytest.mark.slow
def test_log_det_matches_dense_jacobian_of_the_adaptive_solve():
    """Exact-trace log-det == slogdet(jax.jacobian(forward)), float64, Dopri5 at 1e-9.

    (The registry's ``log_det_vs_jacobian`` check does the same on a fixed grid by default.)
    """
    with jax.enable_x64(True):
        b = ffjord(ConcatTimeMLP(hidden=(8, 8)), **tight(1e-9))
        x = 1.5 * jax.random.normal(KEY, (2, 2), jnp.float64)
        params, state = b.init(KEY, x)
        params = perturbed(to64(params))
        _, log_det, _ = b.forward(params, state, x)
        expected = jnp.stack([
            dense_log_det(lambda v: b.forward(params, state, v)[0], event) for event in x
        ])
        assert np.max(np.abs(log_det)) > 0.1  # a map far from volume-preserving
        np.testing.assert_allclose(log_det, expected, atol=1e-7)


def test_round_trip_with_the_default_solver_is_within_tolerance():
    """Dopri5 at rtol = atol = 1e-5 controls the RMS error over the whole batch (one
    solve) per step; the round trip adds two solves' global errors, a few times tol."""
    b = ffjord(ConcatTimeMLP(hidden=(8, 8)))
    x = jax.random.normal(KEY, (64, 2))
    params, state = b.init(KEY, x)
    params = perturbed(params)
    y, log_det, _ = b.forward(params, state, x)
    x_back, inv_log_det, _ = b.inverse(params, state, y)
    assert float(jnp.max(jnp.abs(y - x))) > 0.1
    rms = lambda a: float(jnp.sqrt(jnp.mean(jnp.square(a))))  # noqa: E731
    assert rms(x_back - x) < 2e-4
    assert rms(inv_log_det + log_det) < 2e-4
    assert float(jnp.max(jnp.abs(x_back - x))) < 1e-3


@pytest.mark.parametrize("noise", ["gaussian", "rademacher"])
def test_hutchinson_is_unbiased_for_trace_and_frobenius(noise):
    """The mean over 4096 noise draws is within 4 standard errors of the exact values.

    The trace (log-det) and the RNODE Frobenius integral are both estimated from the
    same ``J eps``; the exact estimator gives the references on the same grid.
    """
    num_keys = 4096
    common = dict(regularization=rnode(0.0, 1.0), **FIXED_GRID)
    field = ConcatTimeMLP(hidden=(8, 8))
    exact = ffjord(field, **common)
    estimated = ffjord(field, trace=hutchinson_trace(noise), **common)
    x = jax.random.normal(KEY, (3, 2))
    params, state = exact.init(KEY, x)
    params = perturbed(params, scale=0.5)
    _, exact_log_det, _, exact_info = exact.forward_with_info(params, state, x, train=True)

    @jax.jit
    @jax.vmap
    def estimate(key):
        _, log_det, _, info = estimated.forward_with_info(params, state, x, train=True, key=key)
        return log_det, info.jacobian_frobenius

    log_dets, frobenius = estimate(jax.random.split(jax.random.key(7), num_keys))
    assert float(jnp.std(log_dets[:, 0])) > 1e-3  # the estimates do vary with the key
    for name, samples, reference in (("log_det", log_dets, exact_log_det),
                                     ("frobenius", frobenius, exact_info.jacobian_frobenius)):
        stderr = jnp.std(samples, axis=0) / np.sqrt(num_keys)
        error = jnp.abs(jnp.mean(samples, axis=0) - reference)
        assert bool(jnp.all(error < 4 * stderr + 1e-6)), (name, error, stderr)


@pytest.mark.parametrize("setting", [
    pytest.param(dict(**FIXED_GRID), id="fixed_grid"),
    pytest.param(dict(**tight(1e-10)), id="adaptive", marks=pytest.mark.slow),
    pytest.param(dict(adjoint=diffrax.BacksolveAdjoint(), **tight(1e-10)), id="backsolve",
                 marks=pytest.mark.slow),
])
def test_gradient_matches_finite_differences(setting):
    """d mean(log p)/d params along a random direction vs central differences, float64.

    On a fixed grid the gradient is that of the discrete map (exact up to rounding);
    adaptively, both adjoints agree with differences of solves at tolerance 1e-10.
    """
    with jax.enable_x64(True):
        b = ffjord(ConcatTimeMLP(hidden=(8,)), **setting)
        y = jax.random.normal(KEY, (8, 2), jnp.float64)
        params, state = b.init(KEY, y)
        params = perturbed(to64(params))

        def loss(p):
            z, log_det, _ = b.inverse(p, state, y)
            return jnp.mean(-0.5 * jnp.sum(z**2, -1) + log_det)

        direction = perturbed(jax.tree_util.tree_map(jnp.zeros_like, params), seed=3, scale=1.0)
        grad = jax.grad(loss)(params)
        analytic = sum(jnp.vdot(g, d) for g, d in zip(jax.tree_util.tree_leaves(grad),
                                                      jax.tree_util.tree_leaves(direction),
                                                      strict=True))
        eps = 1e-5
        shifted = lambda s: jax.tree_util.tree_map(lambda p, d: p + s * d, params, direction)  # noqa: E731
        numeric = (loss(shifted(eps)) - loss(shifted(-eps))) / (2 * eps)
        assert abs(float(analytic)) > 1e-2
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6)


def test_nfe_equals_the_number_of_vector_field_evaluations():
    """The reported NFE matches a counter inside the vector field, for adaptive and fixed
    steps, FSAL (Dopri5) and non-FSAL (Heun) tableaus."""
    times = []
    field = CountingField(counter=lambda t: times.append(float(t)))
    x = jax.random.normal(KEY, (16, 2))
    params, state = ffjord(field).init(KEY, x)
    times.clear()
    settings = [
        dict(),
        dict(solver=diffrax.Heun(), stepsize_controller=diffrax.ConstantStepSize(), dt0=0.05),
    ]
    for setting in settings:
        b = ffjord(field, **setting)
        for direction in (b.forward_with_info, b.inverse_with_info):
            _, _, _, info = direction(params, state, x)
            jax.effects_barrier()
            assert int(info.nfe) == len(times) > 0, (setting, int(info.nfe), len(times))
            times.clear()


def test_rnode_integrals_match_closed_forms_in_both_directions():
    """f = z K on [0, T]: kinetic energy = int_0^T ||z0 expm(K s) K||^2 ds (quadrature),
    Jacobian Frobenius = T ||K||_F^2; the penalty is their weighted sum; the inverse
    solve (same path backwards) reports the same positive integrals."""
    weights = rnode(kinetic_weight=0.3, jacobian_weight=2.0)
    T = 1.5
    with jax.enable_x64(True):
        b = ffjord(LinearField(), t1=T, regularization=weights, **tight(1e-10))
        x = jax.random.normal(KEY, (5, 3), jnp.float64)
        params, state = b.init(KEY, x)
        params = to64(params)
        kernel = np.asarray(params["params"]["Dense_0"]["kernel"])
        s = np.linspace(0.0, T, 3001)
        speeds = [np.sum((np.asarray(x) @ scipy.linalg.expm(kernel * si) @ kernel) ** 2, -1)
                  for si in s]
        kinetic = np.mean(scipy.integrate.simpson(np.stack(speeds), x=s, axis=0))
        frobenius = T * np.sum(kernel**2)
        y, _, _, fwd = b.forward_with_info(params, state, x, train=True)
        _, _, _, inv = b.inverse_with_info(params, state, y, train=True)
        for info in (fwd, inv):
            np.testing.assert_allclose(info.kinetic_energy, kinetic, rtol=1e-7)
            np.testing.assert_allclose(info.jacobian_frobenius, frobenius, rtol=1e-7)
            np.testing.assert_allclose(info.penalty, 0.3 * kinetic + 2.0 * frobenius, rtol=1e-7)
        _, _, _, evaluation = b.forward_with_info(params, state, x)  # train=False: no penalty
        assert float(evaluation.penalty) == 0.0 == float(evaluation.kinetic_energy)


def test_rnode_penalty_is_differentiable_through_a_chain():
    euler = dict(solver=diffrax.Euler(), stepsize_controller=diffrax.ConstantStepSize(), dt0=0.1)
    flow = jb.chain(ffjord(LinearField(), regularization=rnode(1.0, 0.0), **euler), jb.reverse())
    x = jax.random.normal(KEY, (4, 3))
    params, state = flow.init(KEY, x)

    def penalty(p):
        return regularization_penalty(flow.inverse_with_info(p, state, x, train=True)[3])

    _, _, _, info = flow.inverse_with_info(params, state, x, train=True)
    assert float(info[0].penalty) > 0 and info[1] == ()
    np.testing.assert_allclose(penalty(params), info[0].penalty, rtol=1e-6)
    grads = jax.grad(penalty)(params)
    assert all(float(jnp.sum(jnp.abs(g))) > 0 for g in jax.tree_util.tree_leaves(grads))


def test_solve_metrics_count_every_block_of_chains_and_scans():
    block = ffjord(LinearField(), **FIXED_GRID)  # Tsit5, 10 fixed steps: 6 * 10 + 1 NFE
    flow = jb.chain(block, jb.scan(block, 3))
    x = jax.random.normal(KEY, (4, 2))
    params, state = flow.init(KEY, x)
    _, _, new_state, info = jax.jit(flow.forward_with_info)(params, state, x)
    assert new_state == ((), ())
    metrics = solve_metrics(info)
    assert int(metrics["num_solves"]) == 4
    assert int(metrics["nfe"]) == 4 * 61
    assert float(metrics["nfe_per_solve"]) == 61.0
    assert int(metrics["num_steps"]) == 40
    assert int(metrics["failed_solves"]) == 0 == int(metrics["failure_code"])
    assert explain_failures(info) == []
    assert solve_metrics((params, ())) == {}


def test_missing_key_names_the_fix_and_exact_evaluation_needs_none():
    b = ffjord(LinearField(), trace=hutchinson_trace(), eval_trace=exact_trace(), **FIXED_GRID)
    x = jax.random.normal(KEY, (4, 2))
    params, state = b.init(KEY, x)
    with pytest.raises(ValueError, match=r"key=None.*jax\.random\.key"):
        b.inverse(params, state, x, train=True)
    # train=False uses the exact estimator: no key, and the exact log-det.
    _, log_det, _ = b.inverse(params, state, x)
    kernel = params["params"]["Dense_0"]["kernel"]
    np.testing.assert_allclose(log_det, np.full(4, -np.trace(kernel)), rtol=1e-5)


def test_conditional_block_checks_cond():
    b = ffjord(ConcatTimeMLP(hidden=(4,)), cond_shape=(3,), **FIXED_GRID)
    x = jax.random.normal(KEY, (4, 2))
    params, state = b.init(KEY, x)
    with pytest.raises(ValueError, match="cond_shape"):
        b.forward(params, state, x)
    with pytest.raises(ValueError, match=r"trailing shape \(3,\)"):
        b.forward(params, state, x, cond=jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="does not broadcast"):
        b.forward(params, state, x, cond=jnp.zeros((5, 3)))
    unconditional = ffjord(LinearField(), **FIXED_GRID)
    with pytest.raises(ValueError, match=r"unconditional \(cond_shape=None\)"):
        unconditional.forward(unconditional.init(KEY, x)[0], state, x, cond=jnp.zeros((4, 3)))
    assert b.cond_shape == (3,) and unconditional.cond_shape is None
    # One cond for the whole batch broadcasts; it changes the output.
    y0 = b.forward(params, state, x, cond=jnp.zeros(3))[0]
    y1 = b.forward(params, state, x, cond=jnp.ones((4, 3)))[0]
    assert float(jnp.max(jnp.abs(y0 - y1))) > 1e-4
    # A cond batch (2, 1) broadcasts with the data's (4,): both go to (2, 4), each row
    # the solve of that cond.
    conds = jnp.stack([jnp.zeros(3), jnp.ones(3)])[:, None, :]
    y, log_det, _ = b.forward(params, state, x, cond=conds)
    assert y.shape == (2, 4, 2) and log_det.shape == (2, 4)
    np.testing.assert_allclose(y[0], y0, atol=1e-6)
    np.testing.assert_allclose(y[1], y1, atol=1e-6)


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(t0=1.0, t1=1.0), "t0 and t1 must differ"),
    (dict(stepsize_controller=diffrax.ConstantStepSize()), "ConstantStepSize controller needs dt0"),
    (dict(dt0=-0.1), "dt0 must be None or > 0"),
    (dict(solver="dopri5"), "solver must be a diffrax solver"),
    (dict(trace="exact"), "trace must be exact_trace"),
    (dict(event_ndims=0), "event_ndims must be an int >= 1"),
])
def test_bad_configuration_is_rejected_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ffjord(LinearField(), **kwargs)


def test_vector_field_with_the_wrong_output_shape_is_rejected():
    b = ffjord(ConcatTimeMLP(hidden=(4,), out_features=3))
    with pytest.raises(ValueError, match=r"dz/dt with the input's shape \(2,\), got shape \(3,\)"):
        b.init(KEY, jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="rnode: kinetic_weight must be >= 0"):
        rnode(-1.0)
    with pytest.raises(ValueError, match="noise must be one of"):
        hutchinson_trace("uniform")


MAX_STEPS = result_code(diffrax.RESULTS.max_steps_reached)
NONFINITE_INPUT = result_code(diffrax.RESULTS.nonfinite_input)
NONFINITE = result_code(diffrax.RESULTS.nonfinite)


def test_a_solve_that_hits_max_steps_is_nan_and_says_so():
    """NaN values and log-dets (jflows.train skips the step), and the info's code and
    message say max_steps, under jit as eagerly."""
    short = ffjord(ConcatTimeMLP(hidden=(8,)), max_steps=2)
    x = jax.random.normal(KEY, (4, 2))
    params, state = short.init(KEY, x)
    for call in (short.forward_with_info, jax.jit(short.forward_with_info)):
        y, log_det, new_state, info = call(params, state, x)
        assert np.isnan(y).all() and np.isnan(log_det).all() and new_state == ()
        assert isinstance(info, SolveInfo) and info.result.dtype == jnp.int32
        assert int(info.result) == MAX_STEPS and int(info.num_steps) == 2
        metrics = solve_metrics(info)
        assert int(metrics["failed_solves"]) == 1 and int(metrics["failure_code"]) == MAX_STEPS
        assert explain_failures(info) == [f"solve: {describe_result(MAX_STEPS)}"]
        assert describe_result(MAX_STEPS).startswith("max_steps reached")


@pytest.mark.parametrize("setting", [
    pytest.param({}, id="adaptive"), pytest.param(FIXED_GRID, id="fixed_grid")])
def test_a_non_finite_input_is_nan_and_named_as_such(setting):
    """A NaN in the data (or params) fails the solve as non-finite input, quickly (the
    adaptive solver is not left to reject steps until max_steps), under jit."""
    b = ffjord(ConcatTimeMLP(hidden=(8,)), **setting)
    x = jnp.zeros((3, 2)).at[1, 0].set(jnp.nan)
    params, state = b.init(KEY, x)
    y, log_det, _, info = jax.jit(b.forward_with_info)(params, state, x)
    assert np.isnan(y).all() and np.isnan(log_det).all()
    assert int(info.result) == NONFINITE_INPUT and int(info.num_steps) < 100
    assert explain_failures(info) == [f"solve: {describe_result(NONFINITE_INPUT)}"]
    assert "non-finite input" in describe_result(NONFINITE_INPUT)
    bad_params = jax.tree_util.tree_map(lambda a: a.at[0].set(jnp.inf), params)
    _, log_det, _, info = b.forward_with_info(bad_params, state, jnp.zeros((3, 2)))
    assert np.isnan(log_det).all() and int(info.result) == NONFINITE_INPUT


def test_a_solution_that_blows_up_on_a_fixed_grid_is_named_non_finite():
    """A fixed-step solve does not check its values: f = z K with a huge K overflows to
    inf, diffrax reports success, the info says non-finite values."""
    b = ffjord(LinearField(), **FIXED_GRID)
    x = jnp.ones((2, 2))
    params, state = b.init(KEY, x)
    params = jax.tree_util.tree_map(lambda a: jnp.full_like(a, 1e4), params)
    y, _, _, info = b.forward_with_info(params, state, x)
    assert np.isnan(y).all() and int(info.result) == NONFINITE
    assert describe_result(NONFINITE).startswith("non-finite values")


def test_info_flows_through_chain_scan_invert_and_transformed():
    """Each combinator threads the blocks' infos in the shape of its params; a failed
    block is found and named by its place in the pytree."""
    good = ffjord(LinearField(), **FIXED_GRID)
    short = ffjord(ConcatTimeMLP(hidden=(8,)), max_steps=2)
    flow = jb.chain(good, jb.invert(short), jb.reverse(), jb.scan(good, 3))
    x = jax.random.normal(KEY, (4, 2))
    params, state = flow.init(KEY, x)
    assert state == ((), (), (), ())
    y, _, new_state, info = jax.jit(flow.forward_with_info)(params, state, x)
    assert new_state == state and np.isnan(y).all()
    assert info[2] == () and isinstance(info[1], SolveInfo)
    assert info[3].result.shape == (3,)  # stacked per layer
    metrics = solve_metrics(info)
    assert int(metrics["num_solves"]) == 5 and int(metrics["failed_solves"]) == 4
    assert int(metrics["failure_code"]) == MAX_STEPS
    # invert(short).forward is short's inverse; the scan's layers saw NaN input.
    assert explain_failures(info)[0] == f"[1]: {describe_result(MAX_STEPS)}"
    assert explain_failures(info)[1:] == [
        f"[3][{layer}]: {describe_result(NONFINITE_INPUT)}" for layer in range(3)]

    model = transformed(standard_normal((2,)), jb.chain(good, good))
    params, state = model.init(KEY)
    assert state == {"base": (), "bijector": ((), ())}
    log_prob, new_state, info = model.log_prob_and_state(params, state, x)
    assert new_state == state and info["base"] == ()
    assert int(solve_metrics(info)["num_solves"]) == 2
    np.testing.assert_allclose(model.log_prob(params, state, x), log_prob, rtol=1e-6)
    bad = x.at[0, 0].set(jnp.nan)
    info = model.log_prob_and_state(params, state, bad)[2]
    # The inverse runs block 1 first on the NaN data; block 0 then gets its NaN output.
    assert explain_failures(info) == [
        f"['bijector'][{i}]: {describe_result(NONFINITE_INPUT)}" for i in (0, 1)]


def test_state_is_empty_and_a_stale_state_is_refused():
    b = ffjord(LinearField(), **FIXED_GRID)
    x = jax.random.normal(KEY, (4, 2))
    params, state = b.init(KEY, x)
    assert state == () and b.forward(params, state, x)[2] == ()
    stale = b.forward_with_info(params, state, x)[3]  # e.g. the old API's record as state
    with pytest.raises(ValueError, match=r"no state; pass \(\)"):
        b.forward(params, stale, x)


def test_explain_failures_refuses_traced_info():
    b = ffjord(LinearField(), **FIXED_GRID)
    x = jax.random.normal(KEY, (4, 2))
    params, state = b.init(KEY, x)
    with pytest.raises(TypeError, match="outside jit"):
        jax.jit(lambda p: len(explain_failures(b.forward_with_info(p, state, x)[3])))(params)
