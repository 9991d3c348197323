"""2-D toys: determinism, exact sizes, and each density's defining geometry."""

from __future__ import annotations

import numpy as np
import pytest

from jflows.data import toy2d


@pytest.mark.parametrize("name", sorted(toy2d.TOY_DATASETS))
@pytest.mark.parametrize("n", [1, 7, 1001])
def test_shape_dtype_and_determinism(name, n):
    a = toy2d.sample(name, n, seed=3)
    assert a.shape == (n, 2) and a.dtype == np.float32 and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, toy2d.sample(name, n, seed=3))
    if n > 1:
        assert not np.array_equal(a, toy2d.sample(name, n, seed=4))


def test_moons_without_noise_lie_on_the_two_half_circles():
    x = toy2d.make_moons(200, np.random.default_rng(0), noise=0.0)
    upper = np.isclose(np.hypot(x[:, 0], x[:, 1]), 1.0, atol=1e-6) & (x[:, 1] >= -1e-6)
    lower = np.isclose(np.hypot(x[:, 0] - 1, x[:, 1] - 0.5), 1.0, atol=1e-6) & (x[:, 1] <= 0.5)
    assert upper.sum() == 100 and lower.sum() == 100 and np.all(upper | lower)


def test_moons_noise_level():
    rng = np.random.default_rng(1)
    clean = toy2d.make_moons(20_000, np.random.default_rng(1), noise=0.0)
    noisy = toy2d.make_moons(20_000, rng, noise=0.06)
    # same permutation stream: the difference is pure noise of std 0.06
    np.testing.assert_allclose(np.std(noisy - clean), 0.06, rtol=0.03)
    ffjord = toy2d.moons_ffjord(20_000, np.random.default_rng(1))
    np.testing.assert_allclose(ffjord.mean(0), (2 * 0.5 - 1, 2 * 0.25 - 0.2), atol=0.05)


def test_eight_gaussians_centres():
    x = toy2d.sample("8gaussians", 40_000, seed=0) * 1.414
    angle = np.round(np.arctan2(x[:, 1], x[:, 0]) / (np.pi / 4)) % 8
    counts = np.bincount(angle.astype(int), minlength=8)
    assert np.all(np.abs(counts / 40_000 - 1 / 8) < 0.01)
    np.testing.assert_allclose(np.median(np.hypot(*x.T)), 4.0, atol=0.1)


def test_checkerboard_occupies_only_dark_squares():
    x = toy2d.sample("checkerboard", 10_000, seed=0) / 2
    assert np.all(np.abs(x) <= 2)
    assert np.all((np.floor(x[:, 0]) + np.floor(x[:, 1])) % 2 == 0)


def test_rings_radii_and_circles_ratio():
    r = np.hypot(*toy2d.rings(4_000, np.random.default_rng(0)).T)
    centres = np.array([3.0, 2.25, 1.5, 0.75])
    nearest = centres[np.argmin(np.abs(r[:, None] - centres), axis=1)]
    np.testing.assert_allclose(np.std(r - nearest), 0.08, rtol=0.1)
    assert np.bincount(np.argmin(np.abs(r[:, None] - centres), axis=1)).tolist() == [1000] * 4
    rc = np.hypot(*toy2d.circles(4_000, np.random.default_rng(0)).T)
    assert abs(np.sum(rc > 2.25) - 2_000) <= 20   # radii 3 and 1.5, noise std 0.24


def test_swissroll_and_spirals_scale():
    s = toy2d.swissroll(20_000, np.random.default_rng(0))
    assert np.abs(s).max() < (4.5 * np.pi + 5) / 5
    sp = toy2d.two_spirals(20_000, np.random.default_rng(0))
    assert np.hypot(*sp.T).max() < (3 * np.pi + 1) / 3 + 0.6
    np.testing.assert_allclose(sp.mean(0), 0, atol=0.05)     # the two arms mirror


def test_unknown_name_and_bad_n():
    with pytest.raises(KeyError, match="choose one of"):
        toy2d.sample("spiral", 10)
    with pytest.raises(ValueError, match="n must be"):
        toy2d.sample("moons", 0)
