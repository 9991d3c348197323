"""Speech Commands: one-second recordings of chosen words, as waveforms or spectra.

Source: P. Warden, "Speech Commands: A Dataset for Limited-Vocabulary Speech Recognition"
(2018), CC BY 4.0; ``speech_commands_v0.02.tar.gz`` (or ``v0.01``) from
download.tensorflow.org, laid out ``<word>/<speaker>_nohash_<n>.wav`` (16 kHz, 16-bit mono)
plus ``validation_list.txt`` and ``testing_list.txt``. No hash is published for the
tarballs, so they are verified by parsing (tar and wav headers).

Each clip is read as float32 in [-1, 1) (int16 / 32768, as ``tf.audio.decode_wav``),
zero-padded at the end or cut to 16,000 samples, then turned into ``features``:

* ``"waveform"``: the 16,000 samples.
* ``"seed_fft"`` (257 values): exactly what the seed experiment computed,
  ``|tf.signal.stft(x, frame_length=16000, frame_step=1, fft_length=512)|`` (the RStudio AI
  blog, "Experimenting with autoregressive flows in TensorFlow Probability", 2019). With
  TF's semantics that is one frame, a periodic Hann window of length 16,000, and an
  ``rfft`` of length 512 which *crops* the windowed frame to its first 512 samples: the
  257 bins describe only the first 32 ms of the clip, and there the window is at most
  ``sin^2(pi 511 / 16000) ~ 0.01``. The blog describes it as "FFT coefficients computed
  over the complete window"; it is not, and this function reproduces what ran.
* ``"fft_bands"`` (257 values): a spectrum that does cover the whole second: the magnitude
  of one ``rfft`` of the Hann-windowed 16,000 samples (8,001 bins, 1 Hz apart) reduced to
  257 contiguous equal-width bands by root-mean-square. This is our choice, not the seed's.
* ``"stft"``: a magnitude spectrogram with TF's ``stft`` semantics (periodic Hann frames,
  no end padding), default 30 ms frames every 10 ms, ``fft_length`` 512: ``(98, 257)``, the
  25,186 features the seed blog reports for its earlier convnet setup.

Splits: ``"official"`` uses the tarball's ``validation_list.txt`` / ``testing_list.txt``,
or where absent the dataset's documented rule (SHA-1 of the speaker part of the file name,
10 % validation, 10 % test; all clips of a speaker land in the same split). ``"seed"`` is
the seed's random 50/50 train/test split per word (no validation).
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
import wave
from pathlib import Path

import numpy as np

from jflows.data.cache import MissingDataError, RemoteFile, data_home, fetch, parse_guard
from jflows.data.dataset import Dataset

SAMPLE_RATE = 16_000
_TF_DATA = ("https://storage.googleapis.com/download.tensorflow.org/data/",
            "http://download.tensorflow.org/data/")
ARCHIVES = {
    v: RemoteFile(f"speech_commands/speech_commands_{v}.tar.gz",
                  tuple(u + f"speech_commands_{v}.tar.gz" for u in _TF_DATA), None,
                  f"Speech Commands {v} (speech_commands_{v}.tar.gz)")
    for v in ("v0.01", "v0.02")
}
_MAX_NUM_WAVS_PER_CLASS = 2**27 - 1


# --------------------------------------------------------------------------------------
# Signal processing.
# --------------------------------------------------------------------------------------


def read_wav(path) -> np.ndarray:
    """A 16-bit mono wav file as float32 in [-1, 1); its rate must be 16 kHz."""
    with parse_guard(path, "a 16-bit mono 16 kHz wav file"), wave.open(str(path), "rb") as w:
        got = (w.getnchannels(), w.getsampwidth(), w.getframerate())
        if got != (1, 2, SAMPLE_RATE):
            raise ValueError(f"expected (channels, bytes/sample, rate) = (1, 2, 16000), "
                             f"got {got}")
        n = w.getnframes()
        raw = w.readframes(n)
        if len(raw) != 2 * n:
            raise ValueError(f"header says {n} frames, file holds {len(raw) // 2}")
    return np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0


def pad_or_cut(x: np.ndarray, length: int = SAMPLE_RATE) -> np.ndarray:
    """Zero-pad at the end, or cut, to ``length`` samples."""
    x = np.asarray(x)[:length]
    return np.pad(x, (0, length - len(x)))


def hann_window(n: int) -> np.ndarray:
    """Periodic Hann window ``0.5 - 0.5 cos(2 pi k / n)`` (TF's default for ``stft``)."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


def stft_magnitude(x: np.ndarray, frame_length: int = 480, frame_step: int = 160,
                   fft_length: int = 512) -> np.ndarray:
    """``|tf.signal.stft(x, frame_length, frame_step, fft_length)|`` over the last axis:
    frames ``x[i*step : i*step + frame_length]`` for ``i < 1 + (n - frame_length) // step``,
    each times a periodic Hann window, then ``rfft`` of length ``fft_length`` (zero-padded,
    or cropped to its first ``fft_length`` samples when shorter). Shape
    ``(..., frames, fft_length // 2 + 1)``."""
    n = x.shape[-1]
    if n < frame_length:
        raise ValueError(f"signal of {n} samples is shorter than frame_length {frame_length}.")
    starts = frame_step * np.arange(1 + (n - frame_length) // frame_step)
    frames = x[..., starts[:, None] + np.arange(frame_length)]
    spectrum = np.fft.rfft(frames * hann_window(frame_length), n=fft_length, axis=-1)
    return np.abs(spectrum).astype(np.float32)


def seed_fft(x: np.ndarray, fft_length: int = 512) -> np.ndarray:
    """The seed's 257 features: ``stft_magnitude(x, len(x), 1, fft_length)`` squeezed
    (see the module docstring for what they do and do not cover)."""
    n = x.shape[-1]
    return stft_magnitude(x, n, 1, fft_length)[..., 0, :]


def fft_bands(x: np.ndarray, num_bands: int = 257) -> np.ndarray:
    """RMS over ``num_bands`` contiguous equal-width groups of the ``|rfft|`` of the whole
    Hann-windowed signal (last axis)."""
    n = x.shape[-1]
    power = np.abs(np.fft.rfft(x * hann_window(n), axis=-1)) ** 2
    bins = power.shape[-1]
    if num_bands > bins:
        raise ValueError(f"num_bands {num_bands} exceeds the {bins} rfft bins.")
    edges = np.linspace(0, bins, num_bands + 1).round().astype(int)
    sums = np.add.reduceat(power, edges[:-1], axis=-1)
    return np.sqrt(sums / np.diff(edges)).astype(np.float32)


FEATURES = {
    "waveform": lambda x: x.astype(np.float32),
    "seed_fft": seed_fft,
    "fft_bands": fft_bands,
    "stft": stft_magnitude,
}


# --------------------------------------------------------------------------------------
# Splits.
# --------------------------------------------------------------------------------------


def which_set(filename: str, validation_percentage: float = 10.0,
              testing_percentage: float = 10.0) -> str:
    """The dataset README's split rule: hash the file name without its ``_nohash_`` suffix
    (the speaker id) with SHA-1 and map it to a percentage, so a speaker's clips share a
    split. Returns ``"validation"``, ``"test"`` or ``"train"``."""
    speaker = re.sub(r"_nohash_.*$", "", os.path.basename(filename))
    h = int(hashlib.sha1(speaker.encode()).hexdigest(), 16)
    percentage = (h % (_MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / _MAX_NUM_WAVS_PER_CLASS)
    if percentage < validation_percentage:
        return "validation"
    if percentage < validation_percentage + testing_percentage:
        return "test"
    return "train"


def _official_split(root: Path, relnames: list[str]) -> list[str]:
    lists = {}
    for split, fname in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        p = root / fname
        if p.is_file():
            lists[split] = set(p.read_text().split())
    if len(lists) == 2:
        return [next((s for s, names in lists.items() if r in names), "train")
                for r in relnames]
    return [which_set(r) for r in relnames]


# --------------------------------------------------------------------------------------
# Files.
# --------------------------------------------------------------------------------------


def extract_words(archive: Path, words, dest: Path) -> None:
    """Extract ``<word>/*.wav`` of each word not yet in ``dest`` and the two split lists
    from the tarball, each word via a temporary folder renamed into place when complete."""
    todo = {w for w in words if not (dest / w).is_dir()}
    lists = [n for n in ("validation_list.txt", "testing_list.txt") if not (dest / n).exists()]
    if not todo and not lists:
        return
    dest.mkdir(parents=True, exist_ok=True)
    tmp = {w: dest / f".{w}.part" for w in todo}
    for t in tmp.values():
        t.mkdir(exist_ok=True)
    with parse_guard(archive, "the Speech Commands tarball"), tarfile.open(archive) as t:
        for m in t:
            name = m.name[2:] if m.name.startswith("./") else m.name
            parts = name.split("/")
            if not m.isfile():
                continue
            if len(parts) == 2 and parts[0] in todo and parts[1].endswith(".wav"):
                target = tmp[parts[0]] / parts[1]
            elif len(parts) == 1 and parts[0] in lists:
                target = dest / parts[0]
            else:
                continue
            with t.extractfile(m) as src:
                target.write_bytes(src.read())
    absent = sorted(w for w, t in tmp.items() if not any(t.iterdir()))
    for w, t in tmp.items():
        if w in absent:
            t.rmdir()
        else:
            os.replace(t, dest / w)
    if absent:
        raise MissingDataError(f"{archive} has no .wav files for the words {absent}.")


def _root(version: str, data_dir, path, words, download: bool) -> Path:
    if path is not None:
        root = Path(path).expanduser()
    else:
        if version not in ARCHIVES:
            raise ValueError(f"version must be one of {sorted(ARCHIVES)}, got {version!r}.")
        root = data_home(data_dir) / "speech_commands" / version
        if not all((root / w).is_dir() for w in words):
            extract_words(fetch(ARCHIVES[version], data_dir, download=download), words, root)
    missing = [w for w in words if not (root / w).is_dir()]
    if missing:
        raise MissingDataError(
            f"no folder for the words {missing} in {root}; expected the tarball's layout "
            f"<word>/<file>.wav (download {ARCHIVES.get(version, ARCHIVES['v0.02']).urls[0]}).")
    return root


def speech_commands(
    words=("zero",),
    data_dir=None,
    *,
    path=None,
    version: str = "v0.02",
    features: str = "seed_fft",
    split: str = "official",
    seed: int = 0,
    stft_kwargs: dict | None = None,
    download: bool = True,
) -> Dataset:
    """Clips of ``words`` as ``features`` (see the module docstring), ``label`` = index into
    ``words``.

    Args:
      words: word folders to load, e.g. ``("zero",)`` or all 30 / 35 words.
      data_dir: cache directory; the tarball goes to ``<cache>/speech_commands/`` and the
        chosen words are extracted to ``<cache>/speech_commands/<version>/<word>/``.
      path: instead, an extracted folder with ``<word>/*.wav`` (and optionally the lists).
      features: ``"seed_fft"`` (default, 257), ``"fft_bands"`` (257), ``"stft"`` or
        ``"waveform"``.
      split: ``"official"`` or ``"seed"`` (random 50/50 per word with ``seed``).
      stft_kwargs: ``frame_length``, ``frame_step``, ``fft_length`` for ``"stft"``.
    """
    words = [words] if isinstance(words, str) else list(words)
    if features not in FEATURES:
        raise ValueError(f"features must be one of {sorted(FEATURES)}, got {features!r}.")
    if split not in ("official", "seed"):
        raise ValueError(f"split must be 'official' or 'seed', got {split!r}.")
    if stft_kwargs and features != "stft":
        raise ValueError("stft_kwargs only apply to features='stft'.")
    root = _root(version, data_dir, path, words, download)
    relnames, labels = [], []
    for label, w in enumerate(words):
        files = sorted(p.name for p in (root / w).glob("*.wav"))
        if not files:
            raise MissingDataError(f"{root / w} holds no .wav files.")
        relnames += [f"{w}/{f}" for f in files]
        labels += [label] * len(files)
    labels = np.array(labels, np.int32)
    waves = np.stack([pad_or_cut(read_wav(root / r)) for r in relnames])
    transform = FEATURES[features]
    x = transform(waves, **(stft_kwargs or {})) if features == "stft" else transform(waves)
    if split == "official":
        assign = np.array(_official_split(root, relnames))
    else:
        rng = np.random.default_rng(seed)
        assign = np.empty(len(relnames), dtype=object)
        for label in range(len(words)):
            idx = np.flatnonzero(labels == label)
            chosen = np.zeros(len(idx), bool)
            chosen[rng.permutation(len(idx))[: len(idx) // 2]] = True
            assign[idx] = np.where(chosen, "train", "test")
    out = {s: {"x": x[assign == s], "label": labels[assign == s]}
           for s in ("train", "validation", "test")}
    return Dataset(out["train"], out["validation"] if split == "official" else None,
                   out["test"], {
        "name": "speech_commands", "class_names": words, "num_classes": len(words),
        "event_shape": x.shape[1:], "features": features, "sample_rate": SAMPLE_RATE,
        "split": split, "root": str(root),
        "files": {s: [r for r, a in zip(relnames, assign, strict=True) if a == s]
                  for s in ("train", "validation", "test")},
        "preprocessing": f"int16/32768, zero-pad or cut to 16000 samples, {features}",
    })
