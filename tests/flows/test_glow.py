"""The Glow factory: a fresh model's closed-form density, ActNorm initialisation through the
whole multi-scale stack, the learned prior, and the errors.

The shared bijector checks run on one Glow step and a two-level stack in
tests/registry/glow.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import norm

from jflows.bijectors.actnorm import ActNormState
from jflows.flows.glow import glow

SHAPE = (4, 4, 2)


def _small(**kwargs):
    return glow(SHAPE, num_levels=2, num_steps=2, hidden_channels=4, **kwargs)


def _actnorm_states(state):
    is_actnorm = lambda s: isinstance(s, ActNormState)  # noqa: E731
    return [s for s in jax.tree_util.tree_leaves(state, is_leaf=is_actnorm) if is_actnorm(s)]


@pytest.mark.slow
def test_fresh_glow_is_a_rotation_of_the_base():
    """At init ActNorm is the identity, the couplings (zero-initialised conditioners) are the
    identity and the 1x1 convolutions are rotations, so log p(x) = sum_i log N(x_i; 0, 1)."""
    model = _small(learned_prior=True)
    params, state = model.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (3, *SHAPE))
    expected = np.sum(norm.logpdf(np.asarray(x, np.float64)), axis=(1, 2, 3))
    np.testing.assert_allclose(model.log_prob(params, state, x), expected, rtol=1e-5)
    assert model.event_shape == SHAPE


def test_actnorm_initialisation_through_the_stack():
    model = _small()
    params, state = model.init(jax.random.key(0))
    x = 3.0 + 0.1 * jax.random.normal(jax.random.key(1), (16, *SHAPE))
    log_prob, new_state, _ = model.log_prob_and_state(params, state, x, train=True)
    flags = np.concatenate([np.ravel(s.needs_init) for s in _actnorm_states(new_state)])
    assert flags.size == 4 and not flags.any()  # 2 levels x 2 steps, all initialised
    # The initialising pass and an evaluation with the stored initialisation agree, and the
    # standardisation raised the likelihood of this narrow, shifted batch a lot.
    np.testing.assert_allclose(model.log_prob(params, new_state, x), log_prob, rtol=1e-5)
    assert np.all(log_prob > model.log_prob(params, state, x) + 100.0)


def test_learned_prior_adds_a_coupling_before_each_split():
    params, _ = _small(learned_prior=True).init(jax.random.key(0))
    assert "prior" in params["bijector"] and "prior" not in params["bijector"]["deeper"]
    assert "prior" not in _small().init(jax.random.key(0))[0]["bijector"]


def test_samples_have_the_image_shape_and_their_log_prob():
    model = _small()
    params, state = model.init(jax.random.key(0))
    samples, log_prob = model.sample_and_log_prob(params, state, jax.random.key(2), (5,))
    assert samples.shape == (5, *SHAPE)
    np.testing.assert_allclose(model.log_prob(params, state, samples), log_prob, rtol=1e-4,
                               atol=1e-4)


def test_glow_refuses_sizes_that_do_not_squeeze():
    with pytest.raises(ValueError, match=r"divisible by 2\*\*num_levels = 8.*\(28, 28, 1\)"):
        glow((28, 28, 1), num_levels=3)
    with pytest.raises(ValueError, match="num_levels and num_steps"):
        glow((4, 4, 1), num_levels=0)
    with pytest.raises(ValueError, match="wrong shape|event shape|shape"):
        model = _small()
        params, state = model.init(jax.random.key(0))
        model.log_prob(params, state, jnp.zeros((2, 4, 4, 3)))
