"""Smoke runs of the PixelCNN++ experiments: a tiny model, two training steps, real data."""

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("jflows.train", reason="the experiments train through jflows.train")

from experiments.pixelcnn_mnist import config as mnist_config
from experiments.pixelcnn_mnist.main import main as mnist_main
from experiments.pixelcnn_quickdraw import config as quickdraw_config
from experiments.pixelcnn_quickdraw.main import main as quickdraw_main
from tests.shared_data import SHARED_DATA

QUICKDRAW = SHARED_DATA / "quickdraw" / "quickdraw_bitmap_subset.npz"
MNIST = SHARED_DATA / "mnist" / "mnist.npz"


def _need(path):
    if not Path(path).exists():
        pytest.skip(f"dataset not available at {path}")


@pytest.mark.slow
def test_quickdraw_smoke(tmp_path):
    _need(QUICKDRAW)
    results = quickdraw_main(quickdraw_config.SMOKE, out_dir=tmp_path, data_path=QUICKDRAW,
                             progress=False)
    assert results["steps"] == 2 and len(results["classes"]) == 6
    assert 0.0 < results["test_bits_per_dim_polyak"] < 16.0
    assert np.isfinite(results["test_bits_per_dim_raw"])
    assert results["sample_method"] == "cached" and results["sample_seconds"] > 0.0
    for name in results["classes"]:
        assert (tmp_path / f"samples_{name}.png").stat().st_size > 0
    assert json.loads((tmp_path / "results.json").read_text())["config"]["num_filters"] == 8


@pytest.mark.slow
def test_mnist_smoke(tmp_path):
    _need(MNIST)
    results = mnist_main(mnist_config.SMOKE, out_dir=tmp_path, data_path=MNIST,
                         variants=("unconditional", "conditional"), progress=False)
    for variant in ("unconditional", "conditional"):
        assert 0.0 < results[variant]["test_bits_per_dim_polyak"] < 16.0
        assert (tmp_path / variant / "samples.png").stat().st_size > 0
