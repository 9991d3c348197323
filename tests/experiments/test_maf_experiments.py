"""Smoke tests of the maf_gas, maf_mnist and maf_anomaly experiments on tiny configurations."""

import dataclasses
import json
import wave

import numpy as np
import pytest

from experiments.maf_anomaly.config import Config as AnomalyConfig
from experiments.maf_anomaly.main import main as anomaly_main
from experiments.maf_anomaly.main import roc_auc
from experiments.maf_gas.config import Config as GasConfig
from experiments.maf_gas.main import main as gas_main
from experiments.maf_mnist.config import Config as MnistConfig
from experiments.maf_mnist.main import main as mnist_main
from tests.shared_data import SHARED_DATA

MNIST = str(SHARED_DATA / "mnist" / "mnist.npz")


def write_ethylene_co(path, rows=2000, seed=0):
    """A small file in the UCI ``ethylene_CO.txt`` format: a header line, then 19
    whitespace-separated columns (time, CO ppm, ethylene ppm, 16 sensors)."""
    rng = np.random.default_rng(seed)
    sensors = rng.normal(size=(rows, 3)) @ rng.normal(size=(3, 16)) + rng.normal(size=(rows, 16))
    table = np.column_stack([np.arange(rows) * 0.01, rng.uniform(0, 20, (rows, 2)), sensors])
    with open(path, "w") as f:
        f.write("Time (seconds), CO conc (ppm), Ethylene conc (ppm), sensor readings\n")
        np.savetxt(f, table, fmt="%.4f")


def test_maf_gas_end_to_end_on_a_small_official_format_file(tmp_path):
    data = tmp_path / "ethylene_CO.txt"
    write_ethylene_co(data)
    config = dataclasses.replace(
        GasConfig(), source="uci", data_path=str(data), num_layers=2, hidden_sizes=(8,),
        batch_size=50, max_epochs=2, num_samples=100, out_dir=str(tmp_path / "out"))
    results = gas_main(config)
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["rows"] == {"train": 405, "validation": 45, "test": 50}  # MAF split of 500
    assert saved["epochs_trained"] == 2
    for split in ("train", "validation", "test"):
        assert np.isfinite(results["log_likelihood"][split]["mean"])
    assert (tmp_path / "out" / "gas.png").exists()


@pytest.mark.slow  # ~1 min: MNIST preprocessing and scoring 68k images
def test_maf_mnist_smoke(tmp_path):
    config = dataclasses.replace(
        MnistConfig(), model="maf_mog5", data_path=MNIST, hidden_sizes=(8,), max_epochs=1,
        train_subset=300, num_samples=4, out_dir=str(tmp_path))
    results = mnist_main(config)
    assert results["train_rows"] == 300 and results["epochs_trained"] == 1
    for split in ("train", "validation", "test"):
        assert np.isfinite(results["scores"][split]["bits_per_dim"][0])
    assert (tmp_path / "maf_mog5.png").exists()


def test_roc_auc_is_the_pairwise_probability():
    rng = np.random.default_rng(0)
    pos, neg = np.round(rng.normal(1, 1, 40), 1), np.round(rng.normal(0, 1, 50), 1)
    pairs = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    assert roc_auc(pos, neg) == pytest.approx(pairs.mean())


def write_wav(path, samples):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(samples, -1, 1 - 2**-15) * 32768).astype("<i2").tobytes())


@pytest.mark.slow  # ~15 s: 36 one-second clips through the FFT, then two flows compiled
def test_maf_anomaly_speech_pipeline_on_synthetic_clips(tmp_path):
    """The Speech Commands path end to end, on a folder in the dataset's layout."""
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    words = {"zero": 300.0, "one": 900.0, "two": 2000.0}
    for word, pitch in words.items():
        (tmp_path / word).mkdir()
        for speaker in range(12):
            clip = 0.3 * np.sin(2 * np.pi * pitch * (1 + 0.02 * rng.normal()) * t)
            write_wav(tmp_path / word / f"{speaker:08x}_nohash_0.wav",
                      clip + 0.01 * rng.normal(size=t.shape))
    config = dataclasses.replace(
        AnomalyConfig(), dataset="speech_commands", train_class="zero",
        classes=tuple(words), data_path=str(tmp_path), num_layers=2, hidden_sizes=(16,),
        batch_size=6, max_epochs=2, out_dir=str(tmp_path / "out"))
    results = anomaly_main(config)
    assert results["num_classes"] == 3 and 1 <= results["rank_of_train_class"] <= 3
    assert results["train_rows"] == 6  # the seed's 50/50 split of 12 clips
    assert {row["class"] for row in results["table"]} == set(words)
    assert (tmp_path / "out" / "speech_commands_zero.png").exists()
