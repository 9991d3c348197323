"""Conditional flow matching (jflows.ode.flow_matching) against closed forms.

Gaussian source ``N(0, I)`` and Gaussian data ``N(m, S)`` in 2-D: with independent
coupling the path ``x_t = (1 - t) x0 + t x1 + sigma eps`` is jointly Gaussian with
``u = x1 - x0``, so the CFM minimiser (the marginal field) is the conditional mean::

    u(t, x) = E[x1 - x0 | x_t = x] = m + C_t Sigma_t^{-1} (x - t m),
    C_t = t S - (1 - t) I,    Sigma_t = (1 - t)^2 I + t^2 S + sigma^2 I.

A trained field is compared with it; the trained field's FFJORD flow (no conversion of
params) gives exact log-densities compared with ``N(m, S)``'s.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn

import jflows.train as jt
from jflows.distributions import diag_normal, standard_normal
from jflows.nets.odenet import ConcatSquashMLP, ConcatTimeMLP
from jflows.ode import rnode, solve_metrics
from jflows.ode.flow_matching import (
    cfm_flow,
    cfm_loss,
    conditional_path,
    ot_assignment,
    ot_pairs,
)
from jflows.testing import CHECKS
from tests.registry.flow_matching import CASES as FLOW_MATCHING_CASES

MEAN = np.array([1.0, -0.5])
COV = np.array([[0.5, 0.3], [0.3, 0.8]])


def marginal_field(t, x, sigma):
    """The closed-form CFM minimiser above (float64) at rows ``x``, times ``t`` (scalar or
    one per row)."""
    t = np.broadcast_to(np.asarray(t, np.float64), x.shape[:1])[:, None, None]
    identity = np.eye(2)
    c_t = t * COV - (1 - t) * identity
    sigma_t = (1 - t) ** 2 * identity + t**2 * COV + sigma**2 * identity
    gain = np.linalg.solve(sigma_t, c_t)  # C_t symmetric: u = m + (x - t m) Sigma^-1 C_t
    return MEAN + np.einsum("bi,bij->bj", x - t[:, :, 0] * MEAN, gain)


def sample_path_marginal(rng, t, sigma, n):
    """``n`` draws of ``x_t ~ N(t m, Sigma_t)`` (``t`` scalar or one per draw)."""
    t = np.broadcast_to(np.asarray(t, np.float64), (n,))[:, None, None]
    sigma_t = (1 - t) ** 2 * np.eye(2) + t**2 * COV + sigma**2 * np.eye(2)
    noise = np.einsum("bij,bj->bi", np.linalg.cholesky(sigma_t), rng.normal(size=(n, 2)))
    return t[:, :, 0] * MEAN + noise


def target_log_prob(x):
    d = x - MEAN
    return (-0.5 * np.sum(d @ np.linalg.inv(COV) * d, -1) - np.log(2 * np.pi)
            - 0.5 * np.log(np.linalg.det(COV)))


def train_gaussian(sigma, steps, hidden=(32, 32), batch=256, learning_rate=1e-2):
    """CFM on fresh ``N(m, S)`` batches (jflows.train's step, scanned): (flow, field, params,
    state)."""
    field = ConcatTimeMLP(hidden=hidden)
    flow = cfm_flow(field, standard_normal((2,)))
    params, state = flow.init(jax.random.key(0))
    tx = optax.adam(optax.cosine_decay_schedule(learning_rate, steps))
    step = jt.make_train_step(cfm_loss(flow, field, sigma=sigma), tx, axis_name=None)
    train_state = jt.TrainState.create(params=params, model_state=state, optimizer=tx,
                                       key=jax.random.key(1))
    chol = jnp.asarray(np.linalg.cholesky(COV), jnp.float32)

    def body(train_state, key):
        x = jnp.asarray(MEAN, jnp.float32) + jax.random.normal(key, (batch, 2)) @ chol.T
        return step(train_state, x)[0], None

    keys = jax.random.split(jax.random.key(2), steps)
    train_state, _ = jax.jit(lambda s: jax.lax.scan(body, s, keys))(train_state)
    return flow, field, train_state.params, train_state.model_state


def field_rms_errors(field, params, sigma, other_sigma):
    """RMS of (trained - closed form at ``sigma``) and of (closed form at ``other_sigma`` -
    at ``sigma``) over ``x_t`` draws at t in [0.05, 0.95]."""
    rng = np.random.default_rng(0)
    errors, other = [], []
    for t in np.linspace(0.05, 0.95, 10):
        x = sample_path_marginal(rng, t, sigma, 1000)
        v = np.asarray(field.apply(params["bijector"], jnp.float32(t), jnp.float32(x)))
        u = marginal_field(t, x, sigma)
        errors.append(np.mean(np.sum((v - u) ** 2, -1)))
        other.append(np.mean(np.sum((marginal_field(t, x, other_sigma) - u) ** 2, -1)))
    return np.sqrt(np.mean(errors)), np.sqrt(np.mean(other))


class ClosedFormField(nn.Module):
    """The marginal field above as a Flax module (no params), for ``sigma``."""

    sigma: float

    def __call__(self, t, z):
        identity = jnp.eye(2, dtype=z.dtype)
        cov, mean = jnp.asarray(COV, z.dtype), jnp.asarray(MEAN, z.dtype)
        c_t = t * cov - (1 - t) * identity
        sigma_t = (1 - t) ** 2 * identity + t**2 * cov + self.sigma**2 * identity
        return mean + (z - t * mean) @ jnp.linalg.solve(sigma_t, c_t).T


def target_draws(seed, n):
    return MEAN + np.random.default_rng(seed).normal(size=(n, 2)) @ np.linalg.cholesky(COV).T


def test_the_flow_of_the_closed_form_field_is_the_target():
    """The time direction: cfm_flow's FFJORD of the sigma = 0 marginal field carries the
    source N(0, I) to N(m, S): its exact log_prob is N(m, S)'s."""
    flow = cfm_flow(ClosedFormField(0.0), standard_normal((2,)))
    params, state = flow.init(jax.random.key(0))
    x = target_draws(1, 200)
    log_prob = np.asarray(flow.log_prob(params, state, jnp.float32(x)))
    np.testing.assert_allclose(log_prob, target_log_prob(x), atol=2e-3)


@pytest.mark.parametrize("sigma", [0.0, 0.5])
def test_cfm_loss_excess_is_the_distance_to_the_marginal_field(sigma):
    """E[loss(v)] = E||v(t, x_t) - u(t, x_t)||^2 + const, minimal at the marginal field u:
    on one large draw, loss(v) - loss(u) matches the mean distance (the cross term has mean
    zero), for v the marginal field of the other sigma."""
    other = 0.5 - sigma
    x1 = jnp.float32(target_draws(4, 50_000))
    key = jax.random.key(5)

    def loss(field_sigma):
        field = ClosedFormField(field_sigma)
        flow = cfm_flow(field, standard_normal((2,)))
        params, state = flow.init(jax.random.key(0))
        return float(cfm_loss(flow, field, sigma=sigma)(params, state, x1, key)[0])

    rng = np.random.default_rng(6)
    times = rng.uniform(size=200_000)
    x = sample_path_marginal(rng, times, sigma, len(times))
    distance = np.mean(np.sum((marginal_field(times, x, other)
                               - marginal_field(times, x, sigma)) ** 2, -1))
    excess = loss(other) - loss(sigma)
    assert distance > 0.05
    np.testing.assert_allclose(excess, distance, rtol=0.1)


def test_cfm_training_learns_the_marginal_field_and_target_density():
    """A short independent-CFM run: the field approaches the closed form and the exact
    log_prob of its flow (the same params, no conversion) approaches N(m, S)'s."""
    flow, field, params, state = train_gaussian(sigma=0.0, steps=400)
    untrained, _ = flow.init(jax.random.key(0))
    error, sigma_effect = field_rms_errors(field, params, 0.0, 0.5)
    initial_error, _ = field_rms_errors(field, untrained, 0.0, 0.5)
    assert error < 0.4 and error < initial_error / 4
    x = target_draws(1, 200)
    log_prob = np.asarray(flow.log_prob(params, state, jnp.float32(x)))
    assert np.mean(np.abs(log_prob - target_log_prob(x))) < 0.25


@pytest.mark.slow
@pytest.mark.parametrize("sigma", [0.0, 0.5])
def test_longer_cfm_training_matches_the_marginal_field_closely(sigma):
    flow, field, params, state = train_gaussian(sigma=sigma, steps=2000, hidden=(64, 64),
                                                batch=512, learning_rate=3e-3)
    error, sigma_effect = field_rms_errors(field, params, sigma, 0.5 - sigma)
    assert error < 0.15 and error < sigma_effect / 2
    if sigma == 0.0:
        x = target_draws(1, 500)
        log_prob = np.asarray(flow.log_prob(params, state, jnp.float32(x)))
        assert np.mean(np.abs(log_prob - target_log_prob(x))) < 0.15


def test_rnode_statistics_of_the_flow():
    """train=True solves report RNODE integrals; a path from z to x in unit time has
    int ||f||^2 dt >= ||x - z||^2, checked on the closed-form field's flow."""
    flow = cfm_flow(ClosedFormField(0.0), standard_normal((2,)), regularization=rnode(1, 1))
    params, _ = flow.init(jax.random.key(0))
    x = jnp.float32(target_draws(2, 64))
    z, _, _, info = flow.bijector.inverse_with_info(params["bijector"], (), x, train=True)
    metrics = solve_metrics(info)
    lower = float(jnp.mean(jnp.sum((x - z) ** 2, -1)))
    assert float(metrics["kinetic_energy"]) >= lower * (1 - 1e-3) > 0
    assert float(metrics["jacobian_frobenius"]) > 0 and int(metrics["failed_solves"]) == 0


def test_conditional_path_is_the_interpolation_plus_noise():
    x0, x1, eps = (jax.random.normal(jax.random.key(i), (5, 3)) for i in range(3))
    t = jnp.linspace(0.0, 1.0, 5)
    xt, ut = conditional_path(x0, x1, t, eps, 0.3)
    np.testing.assert_allclose(xt[0], x0[0] + 0.3 * eps[0], rtol=1e-6)
    np.testing.assert_allclose(xt[-1], x1[-1] + 0.3 * eps[-1], rtol=1e-6)
    np.testing.assert_allclose(xt[2], 0.5 * (x0[2] + x1[2]) + 0.3 * eps[2], rtol=1e-6)
    np.testing.assert_allclose(ut, x1 - x0, rtol=1e-6)


def test_ot_assignment_is_the_brute_force_optimum():
    cost = np.random.default_rng(0).uniform(size=(3, 6, 6))
    for c in cost:
        perm = np.asarray(jax.jit(ot_assignment)(jnp.asarray(c)))
        assert sorted(perm) == list(range(6))
        best = min(sum(c[p[j], j] for j in range(6)) for p in itertools.permutations(range(6)))
        np.testing.assert_allclose(sum(c[perm[j], j] for j in range(6)), best, rtol=1e-6)
    batched = np.asarray(jax.vmap(ot_assignment)(jnp.asarray(cost)))
    np.testing.assert_array_equal(batched[1], np.asarray(ot_assignment(jnp.asarray(cost[1]))))


def test_ot_pairs_lower_the_pair_cost_and_keep_conditions_apart():
    x0 = jax.random.normal(jax.random.key(0), (64, 2))
    x1 = jax.random.normal(jax.random.key(1), (64, 2)) + 3.0
    paired = ot_pairs(x0, x1)
    assert sorted(np.asarray(paired)[:, 0].tolist()) == sorted(np.asarray(x0)[:, 0].tolist())
    assert float(jnp.sum((paired - x1) ** 2)) < float(jnp.sum((x0 - x1) ** 2))
    cond = jnp.float32(np.arange(64) % 2)[:, None]
    paired = np.asarray(ot_pairs(x0, x1, cond, cond_weight=1e4))
    source_row = [int(np.flatnonzero(np.all(np.asarray(x0) == p, -1))[0]) for p in paired]
    np.testing.assert_array_equal(np.asarray(cond)[source_row], np.asarray(cond))
    mixed = np.asarray(ot_pairs(x0, x1, cond, cond_weight=0.0))
    source_row = [int(np.flatnonzero(np.all(np.asarray(x0) == p, -1))[0]) for p in mixed]
    assert np.any(np.asarray(cond)[source_row] != np.asarray(cond))


@pytest.mark.parametrize("coupling", ["independent", "ot"])
def test_conditional_cfm_step_under_shard_map(coupling):
    """One data-parallel jflows.train step of a conditional field (the OT assignment is a
    host callback inside shard_map) on the flow's params."""
    field = ConcatSquashMLP(hidden=(8,))
    flow = cfm_flow(field, diag_normal((2,), loc=0.0, scale=0.8), cond_shape=(1,))
    params, state = flow.init(jax.random.key(0))
    tx = optax.adam(1e-2)
    loss_fn = cfm_loss(flow, field, sigma=0.1, coupling=coupling,
                       cond_weight=10.0 if coupling == "ot" else None)
    runner = jt.data_parallel(jt.make_train_step(loss_fn, tx), mode="shard_map")
    train_state = jt.TrainState.create(params=params, model_state=state, optimizer=tx,
                                       key=jax.random.key(1))
    batch = {"x": np.asarray(jax.random.normal(jax.random.key(2), (32, 2))),
             "cond": np.asarray(jax.random.bernoulli(jax.random.key(3), 0.5, (32, 1)),
                                np.float32)}
    new_state, metrics = runner(runner.replicate(train_state), batch)
    new_state = runner.unreplicate(new_state)
    assert int(new_state.step) == 1 and float(metrics["skipped"]) == 0.0
    assert float(metrics["cfm"]) > 0 and float(metrics["pair_cost"]) > 0


def test_cfm_flow_refuses_what_flow_matching_fixes():
    field = ConcatTimeMLP(hidden=(8,))
    with pytest.raises(ValueError, match="fixed by flow matching"):
        cfm_flow(field, standard_normal((2,)), t0=1.0)
    with pytest.raises(ValueError, match="no learnable params"):
        cfm_flow(field, diag_normal((2,)))


def test_cfm_loss_refuses_bad_settings_and_batches():
    field = ConcatTimeMLP(hidden=(8,))
    flow = cfm_flow(field, standard_normal((2,)))
    conditional = cfm_flow(field, standard_normal((2,)), cond_shape=(1,))
    with pytest.raises(ValueError, match="coupling must be one of"):
        cfm_loss(flow, field, coupling="sinkhorn")
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        cfm_loss(flow, field, sigma=-0.1)
    with pytest.raises(ValueError, match="pass cond_weight"):
        cfm_loss(conditional, field, coupling="ot")
    with pytest.raises(ValueError, match="cond_weight applies only"):
        cfm_loss(flow, field, coupling="ot", cond_weight=1.0)
    params, state = flow.init(jax.random.key(0))
    key = jax.random.key(1)
    with pytest.raises(ValueError, match=r"expected data of shape \(B, \*\(2,\)\)"):
        cfm_loss(flow, field)(params, state, jnp.zeros((4, 3)), key)
    with pytest.raises(ValueError, match="unconditional flow takes batches of data arrays"):
        cfm_loss(flow, field)(params, state, {"x": jnp.zeros((4, 2))}, key)
    with pytest.raises(ValueError, match="conditional flow takes batches"):
        cfm_loss(conditional, field)(*conditional.init(key), jnp.zeros((4, 2)), key)


@pytest.mark.slow
@pytest.mark.parametrize("check", sorted(CHECKS))
def test_shared_checks_on_the_flow_matching_registry_case(check):
    """The shared checks on ``cfm_flow``'s bijector (tests/registry/flow_matching.py): kept
    out of the default registry because each check compiles ODE solves (~100 CPU s in all),
    as the FFJORD case already does in the default suite."""
    for case in FLOW_MATCHING_CASES:
        if case.checks is None or check in case.checks:
            CHECKS[check](case)


@pytest.mark.slow
def test_readme_flow_matching_example_runs_and_learns():
    import pathlib
    import re

    text = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text[text.index("### Flow matching"):]
    namespace = {}
    exec(compile(re.search(r"```python\n(.*?)```", section, re.S).group(1),
                 "README flow matching", "exec"), namespace)
    assert namespace["samples"].shape == (1000, 2)
    assert -float(namespace["log_p"].mean()) < 2.5  # 2.0 nats observed after the one epoch
