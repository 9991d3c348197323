"""Discretized logistic mixture: normalisation, a float64 NumPy/SciPy reference, tails, edges."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from jflows.distributions import logistic_mixture as lm
from jflows.nets import logistic_mixture_layout as layout

VALUES = np.arange(256)


def reference_log_prob(raw, x, num_mix):
    """Float64 reference written from the paper's equations, independently of the module.

    Direct CDF differences, taken in the tail where they do not cancel (the survival
    function above the bin centre), the coupling of eq. 3 and a SciPy log-sum-exp.
    """
    raw = np.asarray(raw, np.float64)
    x = np.asarray(x, np.float64)
    c, k = x.shape[-1], num_mix
    logits = raw[..., :k]
    locs = raw[..., k : k + c * k].reshape(*raw.shape[:-1], c, k)
    log_s = np.maximum(raw[..., k + c * k : k + 2 * c * k].reshape(*raw.shape[:-1], c, k), -7.0)
    coeffs = np.tanh(raw[..., k + 2 * c * k :].reshape(*raw.shape[:-1], -1, k))
    u = x / 127.5 - 1.0
    total = special.log_softmax(logits, axis=-1)
    pairs = [(cc, j) for cc in range(c) for j in range(cc)]
    for ch in range(c):
        mean = locs[..., ch, :].copy()
        for idx, (cc, j) in enumerate(pairs):
            if cc == ch:
                mean += coeffs[..., idx, :] * u[..., j, None]
        s = np.exp(log_s[..., ch, :])
        lo = (u[..., ch, None] - 1 / 255 - mean) / s
        hi = (u[..., ch, None] + 1 / 255 - mean) / s
        xc = x[..., ch, None]
        lo = np.where(xc == 0, -np.inf, lo)
        hi = np.where(xc == 255, np.inf, hi)
        upper_half = (lo + hi) > 0  # use survival functions there: no cancellation
        with np.errstate(divide="ignore"):
            p = np.where(upper_half, special.expit(-lo) - special.expit(-hi),
                         special.expit(hi) - special.expit(lo))
            total = total + np.log(p)
    return special.logsumexp(total, axis=-1)


def random_raw(key, shape, channels, num_mix, loc_scale=0.6, log_scale_mean=-2.5):
    p = layout.num_params(channels, num_mix)
    raw = jax.random.normal(key, (*shape, p))
    k, ck = num_mix, channels * num_mix
    raw = raw.at[..., k : k + ck].multiply(loc_scale)
    raw = raw.at[..., k + ck : k + 2 * ck].add(log_scale_mean)
    return raw


def test_num_params_matches_the_reference_layout():
    assert layout.num_params(3, 10) == 100  # the reference code's 10 * nr_mix
    assert layout.num_params(1, 5) == 15


def test_to_unit_interval_maps_the_pixel_range_onto_minus_one_one():
    u = layout.to_unit_interval(jnp.array([0, 255, 51]))
    assert u.dtype == jnp.float32  # integer pixels: the default float dtype
    np.testing.assert_allclose(u, [-1.0, 1.0, -0.6], rtol=1e-6)
    assert layout.to_unit_interval(jnp.array([0, 255]), jnp.bfloat16).dtype == jnp.bfloat16
    assert layout.to_unit_interval(jnp.array([0.0], jnp.float16)).dtype == jnp.float16


@pytest.mark.parametrize("log_scale_mean", [-6.0, 0.0, 3.0])
def test_grayscale_sums_to_one_over_256_values(log_scale_mean):
    raw = random_raw(jax.random.key(0), (8,), 1, 5, loc_scale=1.5, log_scale_mean=log_scale_mean)
    x = jnp.broadcast_to(jnp.arange(256)[:, None, None], (256, 8, 1))
    logp = lm.log_prob(jnp.broadcast_to(raw, (256, *raw.shape)), x, 5)
    total = np.exp(np.asarray(logp, np.float64)).sum(axis=0)
    np.testing.assert_allclose(total, 1.0, atol=1e-5)


def test_rgb_conditionals_sum_to_one_and_joint_sums_to_one():
    num_mix = 2
    raw = random_raw(jax.random.key(1), (), 3, num_mix)
    raw = raw.at[-3 * num_mix :].set(jnp.array([1.5, -0.7, 0.9, -2.0, 0.4, 1.1]))  # coupling on
    params = layout.split_params(raw, 3, num_mix)

    # Every channel conditional sums to one for any values of the earlier channels.
    earlier = jax.random.randint(jax.random.key(2), (6, 3), 0, 256)
    for ch in range(3):
        x = jnp.broadcast_to(earlier, (256, 6, 3)).at[:, :, ch].set(jnp.arange(256)[:, None])
        per_channel = lm.channel_log_probs(jax.tree.map(lambda a: a[None, None], params), x)
        sums = np.exp(np.asarray(per_channel[:, :, ch], np.float64)).sum(axis=0)
        np.testing.assert_allclose(sums, 1.0, atol=1e-5)

    # The full joint over 256^3 values of one pixel.
    gb = jnp.stack(jnp.meshgrid(VALUES, VALUES, indexing="ij"), -1).reshape(-1, 2)

    @jax.jit
    def mass_given_red(r):
        x = jnp.concatenate([jnp.full((gb.shape[0], 1), r), gb], axis=-1)
        return jnp.exp(lm.log_prob(jnp.broadcast_to(raw, (gb.shape[0], raw.shape[-1])), x,
                                   num_mix)).sum()

    total = float(np.sum(np.asarray(jax.lax.map(mass_given_red, jnp.arange(256)), np.float64)))
    assert abs(total - 1.0) < 1e-4


@pytest.mark.parametrize("channels", [1, 3])
def test_matches_float64_reference(channels):
    num_mix = 4
    raw = random_raw(jax.random.key(3), (64,), channels, num_mix, loc_scale=1.0)
    x = jax.random.randint(jax.random.key(4), (64, channels), 0, 256)
    x = x.at[:8].set(0).at[8:16].set(255)  # the edge bins
    expected = reference_log_prob(raw, x, num_mix)
    np.testing.assert_allclose(lm.log_prob(raw, x, num_mix), expected, rtol=2e-5, atol=2e-5)
    with jax.enable_x64(True):
        ours64 = lm.log_prob(jnp.asarray(np.asarray(raw), jnp.float64), x, num_mix)
    np.testing.assert_allclose(ours64, expected, rtol=1e-10, atol=1e-10)


def test_far_tails_are_finite_and_accurate():
    """Pixels tens of scales away from every component: the naive CDF difference is 0."""
    num_mix = 2
    x = jnp.array([[60], [100], [128], [160], [200]])
    raw = jnp.zeros((5, layout.num_params(1, num_mix)))
    raw = raw.at[:, num_mix : 2 * num_mix].set(jnp.array([0.9, -0.95]))  # locs far from x
    raw = raw.at[:, 2 * num_mix :].set(-5.0)  # narrow: (distance / scale) ~ 10^2
    ours = lm.log_prob(raw, x, num_mix)
    expected = reference_log_prob(raw, x, num_mix)
    assert np.all(expected < -20)
    np.testing.assert_allclose(ours, expected, rtol=1e-5)
    naive = jnp.log(jax.nn.sigmoid(((x / 127.5 - 1) + 1 / 255 - 0.9) * np.exp(5.0))
                    - jax.nn.sigmoid(((x / 127.5 - 1) - 1 / 255 - 0.9) * np.exp(5.0)))
    assert not np.all(np.isfinite(naive))  # the case the stable formula exists for


@pytest.mark.parametrize("channels", [1, 3])
def test_finite_values_and_gradients_at_edges_and_extreme_params(channels):
    num_mix = 3
    p = layout.num_params(channels, num_mix)
    x = jnp.array([0, 1, 127, 254, 255])[:, None] * jnp.ones((1, channels), jnp.int32)
    extremes = [0.0, 1e3, -1e3, 60.0, -60.0, 1e6, -1e6]
    raws = jnp.stack([jnp.full(p, e) for e in extremes]
                     + [jax.random.normal(jax.random.key(i), (p,)) * 50 for i in range(4)])
    raws = jnp.broadcast_to(raws[:, None], (raws.shape[0], 5, p))
    xs = jnp.broadcast_to(x, (raws.shape[0], 5, channels))
    value_and_grad = jax.jit(jax.value_and_grad(lambda r: lm.log_prob(r, xs, num_mix).sum()))
    value, grad = value_and_grad(raws)
    per_pixel = jax.jit(lm.log_prob, static_argnums=2)(raws, xs, num_mix)
    assert np.all(np.isfinite(per_pixel)) and np.all(per_pixel <= 1e-6)
    assert np.isfinite(value) and np.all(np.isfinite(grad))


def test_log1mexp_against_float64():
    d = np.array([1e-30, 1e-8, 1e-3, 0.5, np.log(2.0), 0.9, 5.0, 40.0], np.float64)
    expected = np.log(-np.expm1(-d))
    np.testing.assert_allclose(lm.log1mexp(jnp.asarray(d, jnp.float32)), expected, rtol=1e-6,
                               atol=1e-12)


def test_sampling_is_deterministic_and_gives_integer_pixels():
    raw = random_raw(jax.random.key(5), (4, 4), 3, 5, loc_scale=2.0, log_scale_mean=0.0)
    a = lm.sample(raw, jax.random.key(6), 3, 5)
    b = lm.sample(raw, jax.random.key(6), 3, 5)
    c = lm.sample(raw, jax.random.key(7), 3, 5)
    assert a.shape == (4, 4, 3) and a.dtype == jnp.int32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() >= 0 and a.max() <= 255


@pytest.mark.parametrize("channels", [1, 3])
def test_samples_follow_the_density(channels):
    """Empirical frequencies of 200k draws of one pixel against exp(log_prob).

    Scales of about half a bin and strong RGB coupling: coupling the later channels to the
    continuous draws instead of the discretized values would move a lot of mass.
    """
    num_mix, n = 3, 200_000
    raw = random_raw(jax.random.key(8), (), channels, num_mix, loc_scale=0.5, log_scale_mean=-5.5)
    if channels == 3:  # red on the edge between two bins, green and blue coupled to it
        red_edge = (np.array([100, 30, 200]) + 0.5) / 127.5 - 1.0
        raw = raw.at[num_mix : 2 * num_mix].set(red_edge)
        raw = raw.at[4 * num_mix : 7 * num_mix].set(-6.5)  # scale 0.4 half-bins
        raw = raw.at[-3 * num_mix :].set(2.0)  # tanh(2) = 0.96
    draws = np.asarray(lm.sample(jnp.broadcast_to(raw, (n, raw.shape[-1])),
                                 jax.random.key(9), channels, num_mix))
    support, counts = np.unique(draws, axis=0, return_counts=True)
    probs = np.exp(np.asarray(lm.log_prob(jnp.broadcast_to(raw, (len(support), raw.shape[-1])),
                                          jnp.asarray(support), num_mix), np.float64))
    total_variation = 0.5 * (np.abs(counts / n - probs).sum() + (1.0 - probs.sum()))
    # Expected TV of n exact draws: sum_i E|freq_i - p_i| / 2 ~ sum_i sqrt(2 p_i / (pi n)) / 2.
    noise = 0.5 * np.sqrt(2 * probs * (1 - probs) / (np.pi * n)).sum()
    assert total_variation < 2 * noise + 1e-3, (total_variation, noise)
    assert probs.sum() > 0.99  # the draws are where the density is


def test_clear_error_for_wrong_parameter_count():
    with pytest.raises(ValueError, match="expected 30 raw parameters"):
        lm.log_prob(jnp.zeros((4, 29)), jnp.zeros((4, 1), jnp.int32), 10)
    with pytest.raises(ValueError, match="share their leading axes"):
        lm.log_prob(jnp.zeros((4, 30)), jnp.zeros((5, 1), jnp.int32), 10)
