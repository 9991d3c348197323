"""Two-dimensional toy densities, deterministic given a seed.

The shapes and constants follow FFJORD's ``lib/toy_data.py`` (Grathwohl et al. 2019,
github.com/rtqichen/ffjord), re-implemented with NumPy only (no scikit-learn); ``moons``
is the TFP FFJORD tutorial's ``sklearn.datasets.make_moons(noise=0.06)``. Every sampler is
``f(n, rng) -> (n, 2) float32`` with ``rng`` a ``numpy.random.Generator``; use
:func:`sample` to draw by name with an integer seed.

Departures from FFJORD, on purpose: every sampler returns exactly ``n`` points (FFJORD's
pinwheel returns ``5 * (n // 5)`` and its spirals ``2 * (n // 2)``), and all draw from the
given generator (FFJORD's checkerboard and spirals use NumPy's global state).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from jflows.data.dataset import Dataset


def _split_counts(n: int, parts: int) -> list[int]:
    """``n`` split into ``parts`` counts differing by at most one (the first get more)."""
    return [n // parts + (i < n % parts) for i in range(parts)]


def make_moons(n: int, rng: np.random.Generator, noise: float = 0.06) -> np.ndarray:
    """scikit-learn's two moons: ``n // 2`` points on the upper unit half circle and the
    rest on the lower one shifted to ``(1, 0.5)`` (both at evenly spaced angles in
    ``[0, pi]``), shuffled, plus Gaussian noise of std ``noise``."""
    n_out = n // 2
    t_out, t_in = np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, n - n_out)
    x = np.concatenate([
        np.stack([np.cos(t_out), np.sin(t_out)], 1),
        np.stack([1 - np.cos(t_in), 0.5 - np.sin(t_in)], 1),
    ])
    x = x[rng.permutation(n)]
    return (x + noise * rng.standard_normal(x.shape)).astype(np.float32)


def moons(n, rng):
    """TFP FFJORD tutorial: ``make_moons(noise=0.06)``."""
    return make_moons(n, rng, noise=0.06)


def moons_ffjord(n, rng):
    """FFJORD's variant: ``make_moons(noise=0.1) * 2 + (-1, -0.2)``."""
    return (make_moons(n, rng, noise=0.1) * 2 + np.array([-1.0, -0.2])).astype(np.float32)


def eight_gaussians(n, rng):
    """Eight Gaussians of std 0.5 centred at radius 4 in the 8 compass directions, all
    divided by 1.414."""
    angles = np.arange(8) * np.pi / 4
    centers = 4 * np.stack([np.cos(angles), np.sin(angles)], 1)
    x = 0.5 * rng.standard_normal((n, 2)) + centers[rng.integers(0, 8, n)]
    return (x / 1.414).astype(np.float32)


def checkerboard(n, rng):
    """Uniform on the 8 dark squares of a 4x4 checkerboard of unit squares on
    ``[-2, 2]^2``, scaled by 2."""
    x1 = rng.random(n) * 4 - 2
    x2 = rng.random(n) - 2 * rng.integers(0, 2, n) + np.floor(x1) % 2
    return (2 * np.stack([x1, x2], 1)).astype(np.float32)


def pinwheel(n, rng, num_arms: int = 5, radial_std: float = 0.3,
             tangential_std: float = 0.1, rate: float = 0.25):
    """Five spiral arms: Gaussian features ``(1 + 0.3 e1, 0.1 e2)`` rotated by the arm's
    angle plus ``rate * exp(radius)``, scaled by 2."""
    labels = np.repeat(np.arange(num_arms), _split_counts(n, num_arms))
    feats = rng.standard_normal((n, 2)) * np.array([radial_std, tangential_std])
    feats[:, 0] += 1.0
    angles = 2 * np.pi * labels / num_arms + rate * np.exp(feats[:, 0])
    c, s = np.cos(angles), np.sin(angles)
    x = np.stack([feats[:, 0] * c + feats[:, 1] * s, -feats[:, 0] * s + feats[:, 1] * c], 1)
    return (2 * x[rng.permutation(n)]).astype(np.float32)


def circles(n, rng):
    """scikit-learn's ``make_circles(factor=0.5, noise=0.08)`` scaled by 3: ``n // 2``
    points evenly spaced on the unit circle, the rest on the radius-0.5 circle."""
    n_out = n // 2
    t_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    t_in = np.linspace(0, 2 * np.pi, n - n_out, endpoint=False)
    x = np.concatenate([np.stack([np.cos(t_out), np.sin(t_out)], 1),
                        0.5 * np.stack([np.cos(t_in), np.sin(t_in)], 1)])
    x = x[rng.permutation(n)] + 0.08 * rng.standard_normal((n, 2))
    return (3 * x).astype(np.float32)


def rings(n, rng):
    """Four concentric circles of radius 3, 2.25, 1.5, 0.75 (points evenly spaced on each),
    shuffled, plus Gaussian noise of std 0.08."""
    counts = [n // 4] * 3 + [n - 3 * (n // 4)]  # as FFJORD: the remainder to the smallest
    x = np.concatenate([
        r * np.stack([np.cos(t), np.sin(t)], 1)
        for r, k in zip((1.0, 0.75, 0.5, 0.25), counts, strict=True)
        for t in [np.linspace(0, 2 * np.pi, k, endpoint=False)]
    ]) * 3.0
    x = x[rng.permutation(n)] + 0.08 * rng.standard_normal((n, 2))
    return x.astype(np.float32)


def swissroll(n, rng):
    """scikit-learn's ``make_swiss_roll(noise=1.0)`` projected on its (x, z) plane and
    divided by 5: ``t = 1.5 pi (1 + 2 u)``, point ``(t cos t, t sin t)`` plus unit noise."""
    t = 1.5 * np.pi * (1 + 2 * rng.random(n))
    x = np.stack([t * np.cos(t), t * np.sin(t)], 1) + rng.standard_normal((n, 2))
    return (x / 5).astype(np.float32)


def two_spirals(n, rng):
    """Two interleaved spirals: angle ``sqrt(u) * 3 pi``, point ``(-cos a * a, sin a * a)``
    plus ``U[0, 0.5)`` jitter per coordinate, and the mirrored arm; all divided by 3, plus
    Gaussian noise of std 0.1."""
    n1 = n - n // 2
    a = np.sqrt(rng.random((n1, 1))) * 540 * (2 * np.pi) / 360
    arm = np.hstack([-np.cos(a) * a, np.sin(a) * a]) + rng.random((n1, 2)) * 0.5
    x = np.vstack([arm, -arm[: n // 2]]) / 3
    return (x + 0.1 * rng.standard_normal(x.shape)).astype(np.float32)


TOY_DATASETS: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "moons": moons,
    "moons_ffjord": moons_ffjord,
    "8gaussians": eight_gaussians,
    "checkerboard": checkerboard,
    "pinwheel": pinwheel,
    "circles": circles,
    "rings": rings,
    "swissroll": swissroll,
    "2spirals": two_spirals,
}


def sample(name: str, n: int, seed=0) -> np.ndarray:
    """``n`` points of the toy density ``name`` (a key of :data:`TOY_DATASETS`), the same
    for the same ``seed`` (an int or a sequence of ints, as ``np.random.default_rng``)."""
    if name not in TOY_DATASETS:
        raise KeyError(f"unknown toy dataset {name!r}; choose one of {sorted(TOY_DATASETS)}.")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}.")
    return TOY_DATASETS[name](n, np.random.default_rng(seed))


def toy_dataset(name: str, *, n_train: int = 10_000, n_validation: int = 1_000,
                n_test: int = 1_000, seed: int = 0) -> Dataset:
    """Train / validation / test samples of the toy density ``name``, drawn from the
    independent streams ``default_rng([seed, 0])``, ``[seed, 1]``, ``[seed, 2]``."""
    splits = [{"x": sample(name, n, [seed, i])}
              for i, n in enumerate((n_train, n_validation, n_test))]
    return Dataset(*splits, {"name": name, "event_shape": (2,), "seed": seed,
                             "preprocessing": "none (samples of a known density)"})
