"""Smoke run of the Glow MNIST experiment: a tiny Glow, three steps, synthetic images."""

import json

import numpy as np
import pytest

from experiments.glow_mnist import config
from experiments.glow_mnist.main import main


def _synthetic_mnist(path):
    """An .npz in MNIST's layout; 10,010 training rows so the loader's default 10,000-row
    validation split leaves some to train on."""
    rng = np.random.default_rng(0)
    images = lambda n: rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)  # noqa: E731
    labels = lambda n: rng.integers(0, 10, n, dtype=np.uint8)  # noqa: E731
    np.savez(path, x_train=images(10_010), y_train=labels(10_010), x_test=images(8),
             y_test=labels(8))
    return path


@pytest.mark.slow
def test_glow_mnist_smoke(tmp_path):
    data = _synthetic_mnist(tmp_path / "mnist.npz")
    results = main(config.SMOKE, out_dir=tmp_path / "run", data_path=str(data), progress=False)
    assert results["steps"] == config.SMOKE.max_steps
    # Uniform noise images: about 8 bits/dim, far above MNIST's, and finite.
    assert 6.0 < results["test_bits_per_dim"] < 10.0
    assert results["test_examples"] == 8
    assert (tmp_path / "run" / "glow_mnist.png").stat().st_size > 0
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["step"] for h in history] == [2, 4]
