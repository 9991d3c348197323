"""RealNVP: identity at initialisation, the DensityModel contract, the scanned layout
(even and odd depth), conditioning and batch norm against a hand-built chain."""

import jax
import jax.numpy as jnp
import numpy as np

import jflows.bijectors as jb
from jflows.bijectors.autoregressive import affine_transformer
from jflows.bijectors.coupling import MLPConditioner, split_coupling
from jflows.flows.realnvp import realnvp
from tests.flows.test_maf import normal_log_prob, perturbed

D = 5


def test_starts_at_the_base_and_samples_match_log_prob():
    flow = realnvp(D, 3, (8,))
    params, state = flow.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (4, D))
    np.testing.assert_allclose(flow.log_prob(params, state, x), normal_log_prob(x), rtol=1e-6)
    params = perturbed(params, 5)
    samples, log_prob = flow.sample_and_log_prob(params, state, jax.random.key(2), (6,))
    assert samples.shape == (6, D)
    np.testing.assert_allclose(log_prob, flow.log_prob(params, state, samples), atol=1e-4)


def test_layout_equals_a_hand_built_chain():
    """Four layers = two scanned pairs; layer l keeps the first half iff l is even."""
    flow = realnvp(D, 4, (8,))
    params, state = flow.init(jax.random.key(0))
    params = perturbed(params, 5)
    pairs = params["bijector"]["pairs"]
    layers = []
    for index in range(4):
        swap = index % 2 == 1
        net = MLPConditioner(2 if swap else 3, 2, (8,))
        layer_params = jax.tree_util.tree_map(lambda a, i=index: a[i // 2],
                                              pairs["odd" if swap else "even"])["coupling"]
        bounded = affine_transformer(3.0)  # realnvp's default log_scale_bound
        layers.append((split_coupling(2, net, bounded, swap=swap), layer_params))
    x = jax.random.normal(jax.random.key(1), (3, D))
    u, total = x, 0.0
    for bijector, p in layers:  # density direction: layer 0 first
        u, log_det, _ = bijector.inverse(p, (), u)
        total = total + log_det
    np.testing.assert_allclose(flow.log_prob(params, state, x),
                               normal_log_prob(u) + total, rtol=1e-5, atol=1e-5)


def test_conditional_batch_norm_odd_depth():
    flow = realnvp(D, 3, (8,), batch_norm=True, cond_shape=(2,))
    assert flow.cond_shape == (2,)
    params, state = flow.init(jax.random.key(0))
    assert set(params["bijector"]) == {"pairs", "last"}
    x = jax.random.normal(jax.random.key(1), (16, D))
    cond = jax.random.normal(jax.random.key(2), (16, 2))
    log_prob, new_state, _ = flow.log_prob_and_state(params, state, x, cond=cond, train=True)
    assert log_prob.shape == (16,)
    moved = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), state, new_state)
    assert any(jax.tree_util.tree_leaves(moved))
    samples = flow.sample(params, new_state, jax.random.key(3), cond=cond)
    assert samples.shape == (16, D) and bool(jnp.all(jnp.isfinite(samples)))
    assert isinstance(jb.recompute_batch_norm_statistics(
        flow.bijector, params["bijector"], state["bijector"], x, cond=cond), dict)
