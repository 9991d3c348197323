"""The container every loader returns, and the split helpers the loaders share.

A :class:`Dataset` holds three splits; each split is a dict of NumPy arrays with the same
leading length (a pytree that :class:`jflows.data.BatchIterator` takes as it is):

* ``"x"``: the data (always present);
* ``"label"``: integer class labels, where the dataset has them (for conditioning);
* other per-example arrays a preprocessing produces (e.g. ``"logdet"`` of the logit
  transform, see :mod:`jflows.data.images`).

``info`` says what the arrays are: the dataset name, shapes, the preprocessing applied,
source files, class names, and so on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

Split = dict[str, np.ndarray]


@dataclass(frozen=True)
class Dataset:
    """Train / validation / test splits plus metadata. ``validation`` or ``test`` may be
    ``None`` where the dataset's published protocol has no such split."""

    train: Split
    validation: Split | None
    test: Split | None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        for name in ("train", "validation", "test"):
            split = getattr(self, name)
            if split is None:
                continue
            if "x" not in split:
                raise ValueError(f"Dataset.{name} must have an 'x' array, got keys {list(split)}.")
            lengths = {k: len(v) for k, v in split.items()}
            if len(set(lengths.values())) != 1:
                raise ValueError(f"Dataset.{name}: arrays differ in length: {lengths}.")

    @property
    def splits(self) -> dict[str, Split]:
        """The splits that exist, by name."""
        return {
            n: s
            for n, s in (("train", self.train), ("validation", self.validation),
                         ("test", self.test))
            if s is not None
        }

    def __repr__(self) -> str:
        parts = [
            f"{n}={ {k: (v.shape, str(v.dtype)) for k, v in s.items()} }"
            for n, s in self.splits.items()
        ]
        return f"Dataset({self.info.get('name', '?')!r}, " + ", ".join(parts) + ")"


def split_sizes(n: int, validation_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """(train, validation, test) sizes when test is the last ``int(test_fraction * n)`` rows
    and validation the last ``int(validation_fraction * rest)`` rows of the remainder."""
    for name, f in (("validation_fraction", validation_fraction),
                    ("test_fraction", test_fraction)):
        if not 0.0 <= f < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {f}.")
    n_test = int(test_fraction * n)
    n_val = int(validation_fraction * (n - n_test))
    return n - n_test - n_val, n_val, n_test


def maf_split_sizes(n: int) -> tuple[int, int, int]:
    """(train, validation, test) sizes of the MAF reference code's split of ``n`` rows:
    test is the last ``int(0.1 * n)`` rows, validation the last ``int(0.1 * rest)`` of the
    remainder (``datasets/{power,gas,miniboone}.py`` of github.com/gpapamak/maf)."""
    return split_sizes(n, 0.1, 0.1)


def maf_split(data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split rows as the MAF reference code does (see :func:`maf_split_sizes`); no copy."""
    n_train, n_val, _ = maf_split_sizes(len(data))
    return data[:n_train], data[n_train:n_train + n_val], data[n_train + n_val:]


def tail_split(n: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices (head, tail) where the tail is the last ``int(fraction * n)`` of ``range(n)``."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}.")
    cut = n - int(fraction * n)
    return np.arange(cut), np.arange(cut, n)


def stratified_tail_split(labels: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices (head, tail) where the tail is the last ``int(fraction * n_c)`` examples of
    each class ``c`` (in file order); for class-sorted files, where a plain tail would be a
    single class."""
    labels = np.asarray(labels)
    head, tail = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        h, t = tail_split(len(idx), fraction)
        head.append(idx[h])
        tail.append(idx[t])
    return np.sort(np.concatenate(head)), np.sort(np.concatenate(tail))


def take(split: Split, index: np.ndarray) -> Split:
    """The rows ``index`` of every array of a split."""
    return {k: v[index] for k, v in split.items()}
