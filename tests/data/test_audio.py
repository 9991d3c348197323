"""Speech Commands: wav parsing, padding, the seed's 257-bin spectrum against an explicit
DFT, the whole-window bands, the STFT shape, the split rules, and the tarball route."""

from __future__ import annotations

import io
import tarfile
import wave
from pathlib import Path

import numpy as np
import pytest

from jflows.data import audio
from jflows.data.cache import CorruptDataError


def _wav_bytes(samples: np.ndarray, rate: int = 16_000, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, "<i2").tobytes())
    return buf.getvalue()


def _write_words(root: Path, spec: dict[str, list[tuple[str, np.ndarray]]]):
    for word, clips in spec.items():
        (root / word).mkdir(parents=True, exist_ok=True)
        for name, s in clips:
            (root / word / name).write_bytes(_wav_bytes(s))


def test_read_wav_scale_and_format_errors(tmp_path):
    (tmp_path / "a.wav").write_bytes(_wav_bytes(np.array([0, 16384, -32768, 32767])))
    np.testing.assert_allclose(audio.read_wav(tmp_path / "a.wav"),
                               [0, 0.5, -1, 32767 / 32768])
    (tmp_path / "b.wav").write_bytes(_wav_bytes(np.zeros(10), rate=8000))
    with pytest.raises(CorruptDataError, match=r"\(1, 2, 16000\), got \(1, 2, 8000\)"):
        audio.read_wav(tmp_path / "b.wav")
    (tmp_path / "c.wav").write_bytes(_wav_bytes(np.zeros(100))[:-50])
    with pytest.raises(CorruptDataError, match="c.wav"):
        audio.read_wav(tmp_path / "c.wav")


def test_pad_or_cut():
    np.testing.assert_array_equal(audio.pad_or_cut(np.ones(3), 5), [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(audio.pad_or_cut(np.arange(7), 5), np.arange(5))


def test_seed_fft_is_a_512_dft_of_the_first_windowed_samples():
    x = np.random.default_rng(0).standard_normal(16_000)
    n = np.arange(512)
    window = np.sin(np.pi * n / 16_000) ** 2          # periodic Hann of length 16000
    dft = np.exp(-2j * np.pi * np.outer(np.arange(257), n) / 512)
    want = np.abs(dft @ (window * x[:512]))
    got = audio.seed_fft(x)
    assert got.shape == (257,)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    # Hence it ignores everything after the first 512 samples:
    y = x.copy()
    y[512:] = 0
    np.testing.assert_allclose(audio.seed_fft(y), got, rtol=1e-6)


def test_fft_bands_cover_the_whole_window():
    t = np.arange(16_000) / 16_000
    late_tone = np.where(t > 0.5, np.sin(2 * np.pi * 1000 * t), 0.0)
    bands = audio.fft_bands(late_tone)
    assert bands.shape == (257,)
    assert np.argmax(bands) == int(1000 * 257 / 8001)     # 1 kHz lands in its band
    assert audio.seed_fft(late_tone).max() == 0.0         # the seed features miss it
    # Parseval for the bands: sum of band energies = sum of |rfft|^2 over the bins
    spectrum = np.abs(np.fft.rfft(late_tone * audio.hann_window(16_000))) ** 2
    edges = np.linspace(0, 8001, 258).round().astype(int)
    np.testing.assert_allclose(np.sum(bands.astype(np.float64) ** 2 * np.diff(edges)),
                               spectrum.sum(), rtol=1e-4)


def test_stft_shape_and_tone_peak():
    t = np.arange(16_000) / 16_000
    tone = np.sin(2 * np.pi * 2000 * t)                   # bin 2000 / (16000 / 512) = 64
    spec = audio.stft_magnitude(tone)
    assert spec.shape == (98, 257)                        # 25,186 values, the seed's count
    assert np.all(np.argmax(spec, axis=1) == 64)
    with pytest.raises(ValueError, match="shorter than frame_length"):
        audio.stft_magnitude(np.zeros(100))


def test_which_set_keeps_a_speaker_together_and_splits_roughly_80_10_10():
    assert (audio.which_set("zero/0a7c2a8d_nohash_0.wav")
            == audio.which_set("cat/0a7c2a8d_nohash_3.wav"))
    sets = [audio.which_set(f"{i:08x}_nohash_0.wav") for i in range(3000)]
    fractions = {s: sets.count(s) / 3000 for s in ("train", "validation", "test")}
    assert abs(fractions["validation"] - 0.1) < 0.03 and abs(fractions["test"] - 0.1) < 0.03


def _spec(rng):
    clip = lambda n: (rng.standard_normal(n) * 3000).astype(np.int16)
    return {
        "zero": [(f"s{i}_nohash_0.wav", clip(16_000 - 100 * i)) for i in range(6)],
        "cat": [("s0_nohash_1.wav", clip(17_000)), ("s9_nohash_0.wav", clip(12_000))],
    }


def test_loader_official_lists_and_features(tmp_path):
    _write_words(tmp_path, _spec(np.random.default_rng(1)))
    (tmp_path / "validation_list.txt").write_text("zero/s1_nohash_0.wav\ncat/s9_nohash_0.wav\n")
    (tmp_path / "testing_list.txt").write_text("zero/s2_nohash_0.wav\n")
    ds = audio.speech_commands(["zero", "cat"], path=tmp_path, features="waveform")
    assert ds.info["files"]["validation"] == ["zero/s1_nohash_0.wav", "cat/s9_nohash_0.wav"]
    assert ds.info["files"]["test"] == ["zero/s2_nohash_0.wav"]
    assert ds.train["x"].shape == (5, 16_000) and ds.train["label"].tolist() == [0, 0, 0, 0, 1]
    assert np.all(ds.validation["x"][1, 12_000:] == 0)          # zero-padded
    seed = audio.speech_commands(["zero", "cat"], path=tmp_path)
    assert seed.train["x"].shape == (5, 257) and seed.info["features"] == "seed_fft"
    np.testing.assert_allclose(seed.train["x"], audio.seed_fft(ds.train["x"]), rtol=1e-6)
    stft = audio.speech_commands(["cat"], path=tmp_path, features="stft",
                                 stft_kwargs={"frame_length": 400, "frame_step": 400})
    assert stft.train["x"].shape[1:] == (40, 257)


def test_loader_seed_split_and_hash_rule_without_lists(tmp_path):
    _write_words(tmp_path, _spec(np.random.default_rng(2)))
    ds = audio.speech_commands(["zero", "cat"], path=tmp_path, split="seed", seed=3)
    assert ds.validation is None
    assert np.bincount(ds.train["label"]).tolist() == [3, 1]
    assert np.bincount(ds.test["label"]).tolist() == [3, 1]
    official = audio.speech_commands(["zero"], path=tmp_path)
    for split, names in official.info["files"].items():
        assert all(audio.which_set(n) == split for n in names)


def test_tarball_route_extracts_only_chosen_words(tmp_path, http_server, monkeypatch):
    src = tmp_path / "src"
    _write_words(src, _spec(np.random.default_rng(4)))
    (src / "testing_list.txt").write_text("zero/s0_nohash_0.wav\n")
    (src / "validation_list.txt").write_text("zero/s3_nohash_0.wav\n")
    blob = io.BytesIO()
    with tarfile.open(fileobj=blob, mode="w:gz") as t:
        t.add(src, arcname=".")
    http_server.routes["/sc.tar.gz"] = (200, blob.getvalue(), None)
    monkeypatch.setitem(audio.ARCHIVES, "v0.02", audio.RemoteFile(
        "speech_commands/speech_commands_v0.02.tar.gz", (http_server.url("/sc.tar.gz"),)))
    cache = tmp_path / "cache"
    ds = audio.speech_commands(["zero"], cache)
    root = cache / "speech_commands" / "v0.02"
    assert sorted(p.name for p in root.iterdir()) == [
        "testing_list.txt", "validation_list.txt", "zero"]
    assert ds.info["files"]["test"] == ["zero/s0_nohash_0.wav"]
    assert len(ds.train["x"]) == 4
    with pytest.raises(audio.MissingDataError, match=r"no .wav files for the words \['wow'\]"):
        audio.speech_commands(["zero", "wow"], cache)
    assert not (root / "wow").exists() and not (root / ".wow.part").exists()


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="features must be one of"):
        audio.speech_commands(path=tmp_path, features="mfcc")
    with pytest.raises(ValueError, match="split must be"):
        audio.speech_commands(path=tmp_path, split="random")
