"""MNIST and CIFAR-10 as uint8 images with labels, and the dequantization + logit transform
that flows are trained in, with its log-det and the unit conversions.

Splits (those of the MAF reference code, github.com/gpapamak/maf ``datasets/mnist.py``,
``datasets/cifar10.py``): validation is the last 10,000 (MNIST; the split of the
``mnist.pkl.gz`` the MAF code reads) or the last 10 % = 5,000 (CIFAR-10) of the official
training set, test is the official test set. Images are NHWC uint8: MNIST ``(N, 28, 28, 1)``,
CIFAR-10 ``(N, 32, 32, 3)``; labels int32.

The transform (the MAF paper's MNIST and CIFAR-10 experiments and its code; the logit of
Dinh et al. 2017, Real NVP)::

    x01 = (k + u) / 256,  k in {0..255}, u ~ U[0, 1)      (dequantize)
    s   = lam + (1 - 2 lam) x01
    y   = logit(s) = log s - log(1 - s)                    (lam = 1e-6 MNIST, 0.05 CIFAR-10)
    log|dy/dx01| = sum_d [log(1 - 2 lam) - log s_d - log(1 - s_d)]

A model trained on ``y`` reports ``log p(y)`` in nats: the unit of the MAF paper's Table 2.
The density of the dequantized pixels on ``[0, 256)^D`` is
``log p(z) = log p(y) + log|dy/dx01| - D log 256`` and bits per dimension are
``-log p(z) / (D log 2)`` (:func:`logit_nats_to_bits_per_dim`).

Files: MNIST's four idx ``.gz`` files (SHA-256 below, the same in TensorFlow's, PyTorch's
and many projects' download scripts); CIFAR-10's ``cifar-10-python.tar.gz`` (SHA-256 of the
Keras loader, md5 ``c58f30108f718f92721af3b95e74349a`` of the publisher's page). Or any
``.npz`` with ``x_train, y_train, x_test, y_test`` passed as ``path``.
"""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jflows.data.cache import (
    CorruptDataError,
    MissingDataError,
    RemoteFile,
    fetch,
    parse_guard,
    verify,
)
from jflows.data.dataset import Dataset, stratified_tail_split, tail_split, take

MNIST_LAMBDA = 1e-6
CIFAR10_LAMBDA = 0.05

_MNIST_URLS = (
    "http://yann.lecun.com/exdb/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)
_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz":
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz":
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz":
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz":
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
MNIST_FILES = {
    name: RemoteFile(f"mnist/{name}", tuple(u + name for u in _MNIST_URLS), sha, f"MNIST {name}")
    for name, sha in _MNIST_SHA256.items()
}
CIFAR10_FILE = RemoteFile(
    "cifar10/cifar-10-python.tar.gz",
    ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
    "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    "CIFAR-10 python version (cifar-10-python.tar.gz)",
)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")


# --------------------------------------------------------------------------------------
# The transform and the unit conversions (NumPy or JAX arrays in, the same kind out).
# --------------------------------------------------------------------------------------


def _xp(x):
    return jnp if isinstance(x, jax.Array) else np


def _sum_event(a, event_ndims):
    xp = _xp(a)
    n = a.ndim - 1 if event_ndims is None else event_ndims
    return xp.sum(a, axis=tuple(range(a.ndim - n, a.ndim))) if n else a


def dequantize(key, images, num_bits: int = 8):
    """``(k + u) / 2**num_bits`` with fresh ``u ~ U[0, 1)`` per pixel (JAX, jit-able):
    integer pixels ``k`` to continuous values in ``[0, 1)``, for per-batch dequantization."""
    u = jax.random.uniform(key, images.shape, jnp.float32)
    return (images.astype(jnp.float32) + u) / 2.0**num_bits


def logit_transform(x01, lam: float, *, event_ndims: int | None = None):
    """``y = logit(lam + (1 - 2 lam) x01)`` and ``log|det dy/dx01|``, summed over the last
    ``event_ndims`` axes (default: all but the first)."""
    xp = _xp(x01)
    s = lam + (1 - 2 * lam) * x01
    y = xp.log(s) - xp.log1p(-s)
    log_det = xp.log1p(-2 * lam) - xp.log(s) - xp.log1p(-s)
    return y, _sum_event(log_det, event_ndims)


def inverse_logit_transform(y, lam: float):
    """``x01 = (sigmoid(y) - lam) / (1 - 2 lam)``, the inverse of :func:`logit_transform`."""
    xp = _xp(y)
    s = 1 / (1 + xp.exp(-y))
    return (s - lam) / (1 - 2 * lam)


def pixel_log_prob(log_prob_logit, log_det, num_dims: int, num_bits: int = 8):
    """Log density of the dequantized pixels on ``[0, 2**num_bits)^D`` from the logit-space
    log density: ``log p(y) + log|dy/dx01| - D log 2**num_bits``."""
    return log_prob_logit + log_det - num_dims * num_bits * np.log(2.0)


def logit_nats_to_bits_per_dim(log_prob_logit, log_det, num_dims: int, num_bits: int = 8):
    """Bits/dim in pixel space of a model that reports ``log p(y)`` in logit space,
    ``-log p(z) / (D log 2)`` with ``log p(z)`` of :func:`pixel_log_prob`; pass the
    per-example ``log_det`` of :func:`logit_transform` (the loaders' ``"logdet"`` array).
    (Any other nats -> bits/dim conversion: ``jflows.units.bits_per_dim``.)"""
    return -pixel_log_prob(log_prob_logit, log_det, num_dims, num_bits) / (num_dims * np.log(2.0))


def logit_preprocess(images: np.ndarray, lam: float, rng: np.random.RandomState):
    """Dequantize once with ``rng`` (as the MAF code does, fixed noise per example) and
    logit-transform; flattened to ``(N, D)`` float32, with float64 per-example log-dets."""
    flat = images.reshape(len(images), -1)
    x01 = (flat + rng.rand(*flat.shape)) / 256.0
    y, log_det = logit_transform(x01, lam)
    return y.astype(np.float32), log_det


# --------------------------------------------------------------------------------------
# File formats.
# --------------------------------------------------------------------------------------


def read_idx(path) -> np.ndarray:
    """An idx file (LeCun's format; gzip-compressed if the name ends in ``.gz``) of uint8.

    Header: two zero bytes, the type code (0x08 = uint8), the number of dimensions, then
    each dimension as a big-endian int32; then the data. The data length is checked.
    """
    with parse_guard(path, "an idx file of unsigned bytes"):
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(path, "rb") as f:
            raw = f.read()
        if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
            raise ValueError(f"bad magic {raw[:4]!r}: expected 00 00 08 <ndim>")
        ndim = raw[3]
        shape = tuple(int(d) for d in np.frombuffer(raw, ">i4", count=ndim, offset=4))
        data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
        if data.size != int(np.prod(shape)):
            raise ValueError(f"header says shape {shape} but {data.size} data bytes follow")
        return data.reshape(shape)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only dicts, lists, strings, numbers and NumPy arrays: a CIFAR batch cannot
    run code on load."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        return super().find_class(module, name)


def read_cifar_batch(fileobj) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch (pickle of ``{'data': (N, 3072) uint8 CHW rows,
    'labels': list}``) as ``(N, 32, 32, 3)`` uint8 images and int32 labels."""
    batch = _ArrayUnpickler(fileobj, encoding="latin1").load()
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data = np.asarray(batch["data"], dtype=np.uint8)
    labels = np.asarray(batch["labels"], dtype=np.int32)
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise ValueError(f"bad batch: data {data.shape}, labels {labels.shape}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


_CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def read_cifar10(path) -> tuple[np.ndarray, ...]:
    """``(x_train, y_train, x_test, y_test)`` from ``cifar-10-python.tar.gz`` or from the
    extracted ``cifar-10-batches-py`` folder."""
    path = Path(path)
    batches = {}
    with parse_guard(path, "the CIFAR-10 python version (tar.gz or cifar-10-batches-py/)"):
        if path.is_dir():
            for name in _CIFAR_BATCHES:
                with open(path / name, "rb") as f:
                    batches[name] = read_cifar_batch(f)
        else:
            with tarfile.open(path) as t:
                for m in t:
                    base = m.name.rsplit("/", 1)[-1]
                    if m.isfile() and base in _CIFAR_BATCHES:
                        batches[base] = read_cifar_batch(io.BytesIO(t.extractfile(m).read()))
        missing = [b for b in _CIFAR_BATCHES if b not in batches]
        if missing:
            raise ValueError(f"batches {missing} are missing")
    x_train = np.concatenate([batches[b][0] for b in _CIFAR_BATCHES[:5]])
    y_train = np.concatenate([batches[b][1] for b in _CIFAR_BATCHES[:5]])
    return x_train, y_train, *batches["test_batch"]


def read_image_npz(path, image_shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """``(x_train, y_train, x_test, y_test)`` from an ``.npz`` with those keys; images are
    reshaped to ``(N, *image_shape)`` uint8 (so ``(N, 28, 28)`` MNIST files work)."""
    with parse_guard(path, "an .npz with x_train, y_train, x_test, y_test"), \
            np.load(path, allow_pickle=False) as z:
        arrays = [z[k] for k in ("x_train", "y_train", "x_test", "y_test")]
    out = []
    for x, y in (arrays[:2], arrays[2:]):
        if x.dtype != np.uint8 or x[0].size != int(np.prod(image_shape)) or len(x) != len(y):
            raise CorruptDataError(
                f"{path}: expected uint8 images of {image_shape} with one label each, got "
                f"x {x.shape} {x.dtype}, y {y.shape}.")
        out += [x.reshape(-1, *image_shape), y.astype(np.int32)]
    return tuple(out)


# --------------------------------------------------------------------------------------
# Loaders.
# --------------------------------------------------------------------------------------


def _image_dataset(name, x_train, y_train, x_test, y_test, *, val_index, preprocessing, lam,
                   flip, seed, info) -> Dataset:
    train_index, val_index_ = val_index
    train = take({"x": x_train, "label": y_train}, train_index)
    val = take({"x": x_train, "label": y_train}, val_index_)
    test = {"x": x_test, "label": y_test}
    if flip:
        train = {"x": np.concatenate([train["x"], train["x"][:, :, ::-1]]),
                 "label": np.concatenate([train["label"], train["label"]])}
    info = {"name": name, "image_shape": x_train.shape[1:], "num_classes": 10,
            "flip_augmented_train": flip, **info}
    if preprocessing == "none":
        return Dataset(train, val, test, {**info, "preprocessing": "none (uint8 pixels)",
                                          "event_shape": x_train.shape[1:]})
    if preprocessing != "logit":
        raise ValueError(f"preprocessing must be 'none' or 'logit', got {preprocessing!r}.")
    rng = np.random.RandomState(seed)
    splits = []
    for split in (train, val, test):  # noise drawn in the MAF code's order
        y, log_det = logit_preprocess(split["x"], lam, rng)
        splits.append({"x": y, "label": split["label"], "logdet": log_det})
    dims = int(np.prod(x_train.shape[1:]))
    return Dataset(*splits, {
        **info, "event_shape": (dims,), "lambda": lam, "num_dims": dims,
        "preprocessing": f"MAF: (k + u)/256 with fixed noise (RandomState({seed})), "
                         f"logit(lam + (1 - 2 lam) x) with lam = {lam}, flattened; "
                         "'logdet' = log|dy/dx01| per example",
    })


def mnist(data_dir=None, *, path=None, preprocessing: str = "none", validation_size=10_000,
          seed: int = 42, download: bool = True) -> Dataset:
    """MNIST: train = first 50,000, validation = last ``validation_size`` training images,
    test = official test set (whatever a local ``.npz`` holds).

    Args:
      data_dir: cache directory; the idx files go to ``<cache>/mnist/``.
      path: instead of the cache, a folder with the four idx ``.gz`` files or an ``.npz``
        with ``x_train, y_train, x_test, y_test``.
      preprocessing: ``"none"`` (uint8 ``(N, 28, 28, 1)``) or ``"logit"`` (MAF: fixed
        dequantization noise, logit with lam = 1e-6, ``(N, 784)`` float32 plus ``"logdet"``).
      seed: seed of the fixed dequantization noise (MAF's is 42).
    """
    if path is not None and Path(path).suffix == ".npz":
        x_train, y_train, x_test, y_test = read_image_npz(path, (28, 28, 1))
        files = [path]
    else:
        files = [_local_or_fetch(MNIST_FILES[n], data_dir, path, download)
                 for n in _MNIST_SHA256]
        x_train, y_train, x_test, y_test = (read_idx(f) for f in files)
        x_train, x_test = x_train[..., None], x_test[..., None]
        y_train, y_test = y_train.astype(np.int32), y_test.astype(np.int32)
        for x, y, f in ((x_train, y_train, files[0]), (x_test, y_test, files[2])):
            if x.shape[1:] != (28, 28, 1) or len(x) != len(y):
                raise CorruptDataError(f"{f}: MNIST images {x.shape} vs labels {y.shape}.")
    n = len(x_train)
    if not 0 <= validation_size < n:
        raise ValueError(f"validation_size must be in [0, {n}), got {validation_size}.")
    cut = n - validation_size
    return _image_dataset(
        "mnist", x_train, y_train, x_test, y_test,
        val_index=(np.arange(cut), np.arange(cut, n)), preprocessing=preprocessing,
        lam=MNIST_LAMBDA, flip=False, seed=seed,
        info={"files": [str(f) for f in files], "class_names": [str(i) for i in range(10)]})


def cifar10(data_dir=None, *, path=None, preprocessing: str = "none", flip: bool = False,
            validation_fraction: float = 0.1, seed: int = 42, download: bool = True) -> Dataset:
    """CIFAR-10: validation = last 10 % of the official training batches (5,000), test =
    ``test_batch``. For a class-sorted ``.npz`` (such as a per-class subset) the
    validation split is the last 10 % *of each class* instead, and ``info`` says so.

    Args:
      path: ``cifar-10-python.tar.gz``, the ``cifar-10-batches-py`` folder, or an ``.npz``.
      preprocessing: ``"none"`` (uint8 ``(N, 32, 32, 3)``) or ``"logit"`` (lam = 0.05,
        ``(N, 3072)`` float32 flattened in HWC order, plus ``"logdet"``).
      flip: add horizontally flipped copies of the training images (MAF's augmentation).
    """
    if path is not None and Path(path).suffix == ".npz":
        x_train, y_train, x_test, y_test = read_image_npz(path, (32, 32, 3))
        f = Path(path)
    else:
        is_batch_dir = path is not None and (Path(path) / "data_batch_1").is_file()
        f = Path(path) if is_batch_dir else _local_or_fetch(CIFAR10_FILE, data_dir, path, download)
        x_train, y_train, x_test, y_test = read_cifar10(f)
    if np.all(np.diff(y_train) >= 0):
        val_index, split_note = stratified_tail_split(y_train, validation_fraction), (
            "class-sorted file: validation = last fraction of each class")
    else:
        val_index, split_note = tail_split(len(y_train), validation_fraction), (
            "validation = last fraction of the training set (MAF)")
    return _image_dataset(
        "cifar10", x_train, y_train, x_test, y_test, val_index=val_index,
        preprocessing=preprocessing, lam=CIFAR10_LAMBDA, flip=flip, seed=seed,
        info={"files": [str(f)], "class_names": list(CIFAR10_CLASSES), "split": split_note})


def _local_or_fetch(remote: RemoteFile, data_dir, path, download) -> Path:
    """The file ``remote`` from ``path`` (the file itself, or a folder holding it under its
    official name) when ``path`` is given, else from the cache (downloading it). A local
    file with a known hash is verified like a cached one."""
    if path is None:
        return fetch(remote, data_dir, download=download)
    p = Path(path).expanduser()
    name = Path(remote.relpath).name
    if p.is_dir():
        p = p / name
    if not p.is_file():
        raise MissingDataError(f"{p} does not exist (expected {remote.name}; official URL "
                               f"{remote.urls[0]}).")
    verify(p, remote)
    return p
