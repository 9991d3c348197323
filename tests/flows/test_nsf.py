
"""NSF-coupling and NSF-autoregressive: identity at initialisation, the DensityModel
contract, incremental MADE sampling == D passes, and a few training steps that help."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jflows.flows.nsf import nsf_autoregressive, nsf_coupling
from tests.flows.test_maf import normal_log_prob, perturbed

D = 4


def test_both_start_at_the_base():
    x = 2.0 * jax.random.normal(jax.random.key(1), (4, D))
    for flow in (nsf_coupling(D, 2, (8,), num_bins=4), nsf_autoregressive(D, 2, (8,),
                                                                          num_bins=4)):
        params, state = flow.init(jax.random.key(0))
        np.testing.assert_allclose(flow.log_prob(params, state, x), normal_log_prob(x),
                                   rtol=1e-5)


@pytest.mark.slow
def test_autoregressive_sampling_methods_agree():
    fast = nsf_autoregressive(D, 3, (8,), num_bins=4, cond_shape=(2,))
    slow = nsf_autoregressive(D, 3, (8,), num_bins=4, cond_shape=(2,), sampling="passes")
    params, state = fast.init(jax.random.key(0))
    params = perturbed(params, 5)
    cond = jax.random.normal(jax.random.key(1), (5, 2))
    x, log_prob = fast.sample_and_log_prob(params, state, jax.random.key(2), cond=cond)
    x_ref = slow.sample(params, state, jax.random.key(2), cond=cond)
    np.testing.assert_allclose(x, x_ref, atol=1e-5)
    np.testing.assert_allclose(log_prob, fast.log_prob(params, state, x, cond=cond), atol=1e-4)


def test_a_few_steps_raise_the_likelihood():
    flow = nsf_coupling(2, 2, (16,), num_bins=4)
    params, state = flow.init(jax.random.key(0))
    x = jnp.stack([jax.random.normal(jax.random.key(1), (256,)),
                   jnp.zeros(256)], -1)
    x = x.at[:, 1].set(jnp.sin(2 * x[:, 0]) + 0.1 * jax.random.normal(jax.random.key(2), (256,)))
    tx = optax.adam(1e-2)

    @jax.jit
    def step(params, opt_state):
        loss, grads = jax.value_and_grad(lambda p: -jnp.mean(flow.log_prob(p, state, x)))(params)
        updates, opt_state = tx.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state = tx.init(params)
    losses = []
    for _ in range(30):
        params, opt_state, loss = step(params, opt_state)
        losses.append(float(loss))
    assert np.isfinite(losses).all() and losses[-1] < losses[0] - 0.3
