"""Quick, Draw! 28x28 bitmaps per class, with class labels for conditioning.

Source: Google Creative Lab, "The Quick, Draw! Dataset" (CC BY 4.0), the per-class numpy
bitmap files ``https://storage.googleapis.com/quickdraw_dataset/full/numpy_bitmap/<class>.npy``
(``(N, 784)`` uint8, 0 = background, 255 = ink; the project's docs call them
``full_numpy_bitmap_<class>.npy``, the name they download under). Google publishes no
hashes for them, so each file is verified by parsing (npy header, dtype, row length, a
file size that matches the header).

Split per class, in file order: test = last ``test_fraction``, validation = last
``validation_fraction`` of the rest, after keeping the first ``max_per_class`` rows.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import numpy as np

from jflows.data.cache import CorruptDataError, MissingDataError, RemoteFile, fetch, parse_guard
from jflows.data.dataset import Dataset, split_sizes

URL = "https://storage.googleapis.com/quickdraw_dataset/full/numpy_bitmap/{}.npy"

#: The 20 classes of the seed's PixelCNN experiment.
SEED_CLASSES = (
    "bee", "bicycle", "broccoli", "butterfly", "cactus", "frog", "guitar", "lightning",
    "penguin", "pizza", "rollerskates", "sea turtle", "sheep", "snowflake", "sun", "swan",
    "The Eiffel Tower", "tractor", "train", "tree",
)


def remote_file(name: str) -> RemoteFile:
    """The numpy bitmap file of class ``name`` (spaces allowed, e.g. ``"sea turtle"``)."""
    return RemoteFile(
        f"quickdraw/full_numpy_bitmap_{name}.npy",
        (URL.format(urllib.parse.quote(name)),),
        None,
        f"QuickDraw bitmaps of '{name}'",
    )


def read_bitmaps(path, max_count: int | None = None) -> np.ndarray:
    """The first ``max_count`` rows (all if None) of a numpy bitmap file, ``(n, 784)``
    uint8; memory-mapped, so only those rows are read."""
    with parse_guard(path, "a QuickDraw numpy bitmap file ((N, 784) uint8 .npy)"):
        data = np.load(path, mmap_mode="r", allow_pickle=False)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 784:
            raise ValueError(f"expected (N, 784) uint8, got {data.shape} {data.dtype}")
        return np.array(data[:max_count])


def _check_bitmaps(x: np.ndarray, where: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 784:
        raise CorruptDataError(f"{where}: expected (N, 784) uint8 bitmaps, got "
                               f"{x.shape} {x.dtype}.")
    return x


def quickdraw_bitmaps(
    classes=None,
    data_dir=None,
    *,
    path=None,
    max_per_class: int | None = None,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    download: bool = True,
) -> Dataset:
    """QuickDraw bitmaps ``(N, 28, 28, 1)`` uint8 with ``label`` = index into ``classes``.

    Args:
      classes: class names; default: every class of the ``.npz`` given as ``path``, else
        :data:`SEED_CLASSES`.
      data_dir: cache directory; files go to ``<cache>/quickdraw/``.
      path: an ``.npz`` whose keys are class names and values ``(N, 784)`` uint8 (such as a
        local subset), or a folder of ``<class>.npy`` / ``full_numpy_bitmap_<class>.npy``.
      max_per_class: keep at most this many drawings per class (the first ones).
      validation_fraction, test_fraction: per-class split fractions (see module doc).
    """
    npz = None
    if path is not None and Path(path).suffix == ".npz":
        with parse_guard(path, "an .npz of (N, 784) uint8 arrays keyed by class name"):
            npz = np.load(path, allow_pickle=False)
            available = list(npz.files)
    if classes is None:
        classes = available if npz is not None else list(SEED_CLASSES)
    classes = [classes] if isinstance(classes, str) else list(classes)
    if not classes or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be a non-empty list of distinct names, got {classes}.")
    if max_per_class is not None and max_per_class < 1:
        raise ValueError(f"max_per_class must be >= 1 or None, got {max_per_class}.")
    per_class, files = [], []
    for name in classes:
        if npz is not None:
            if name not in available:
                raise KeyError(f"class {name!r} is not in {path}; it has {available}.")
            with parse_guard(path, f"an .npz holding class {name!r}"):
                x = _check_bitmaps(npz[name], f"{path}[{name!r}]")[:max_per_class]
            files.append(f"{path}[{name}]")
        else:
            f = _class_file(name, data_dir, path, download)
            x = read_bitmaps(f, max_per_class)
            files.append(str(f))
        per_class.append(x)
    if npz is not None:
        npz.close()
    splits = {"train": ([], []), "validation": ([], []), "test": ([], [])}
    for label, x in enumerate(per_class):
        n_train, n_val, _ = split_sizes(len(x), validation_fraction, test_fraction)
        parts = (x[:n_train], x[n_train:n_train + n_val], x[n_train + n_val:])
        for (xs, ys), part in zip(splits.values(), parts, strict=True):
            xs.append(part)
            ys.append(np.full(len(part), label, np.int32))
    out = {
        k: {"x": np.concatenate(xs).reshape(-1, 28, 28, 1), "label": np.concatenate(ys)}
        for k, (xs, ys) in splits.items()
    }
    return Dataset(out["train"], out["validation"], out["test"], {
        "name": "quickdraw", "class_names": classes, "num_classes": len(classes),
        "image_shape": (28, 28, 1), "event_shape": (28, 28, 1), "files": files,
        "preprocessing": f"none (uint8, 255 = ink); first {max_per_class or 'all'} per class; "
                         f"per class: last {test_fraction} test, last {validation_fraction} "
                         "of the rest validation",
    })


def _class_file(name: str, data_dir, path, download: bool) -> Path:
    remote = remote_file(name)
    if path is None:
        return fetch(remote, data_dir, download=download)
    folder = Path(path).expanduser()
    for candidate in (folder / f"full_numpy_bitmap_{name}.npy", folder / f"{name}.npy"):
        if candidate.is_file():
            return candidate
    raise MissingDataError(
        f"neither {folder / f'full_numpy_bitmap_{name}.npy'} nor {folder / f'{name}.npy'} "
        f"exists; download {remote.urls[0]} to one of them.")
