"""What ``fit`` accepts as data, reduced to two questions: batches from step k, and how many
steps make an epoch.

Training data may be

* a ``jflows.data.BatchIterator`` (anything with ``from_step(step)`` and
  ``steps_per_epoch``): resumable, and the multi-process shard comes from its
  ``process_index`` / ``process_count``;
* a ``Sequence`` of batches (a list of dicts of arrays, ...): one epoch, repeated;
* a callable ``step -> iterator of batches from that step`` together with
  ``steps_per_epoch``.

Validation data may be a ``BatchIterator`` (its epoch 0 is used every time), a
``Sequence`` of batches, or a callable returning a fresh iterable of batches.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple


class TrainSource(NamedTuple):
    from_step: Callable[[int], Iterator]
    steps_per_epoch: int
    drop_remainder: bool | None  # None: unknown


def train_source(data, steps_per_epoch: int | None = None) -> TrainSource:
    """Normalise training data; see the module docstring."""
    if hasattr(data, "from_step") and hasattr(data, "steps_per_epoch"):
        spe = data.steps_per_epoch if steps_per_epoch is None else steps_per_epoch
        return TrainSource(data.from_step, spe, getattr(data, "drop_remainder", None))
    if isinstance(data, Sequence):
        if not data:
            raise ValueError("fit: train_data is an empty sequence of batches.")
        n = len(data)

        def from_step(step):
            return (data[i % n] for i in itertools.count(step))

        return TrainSource(from_step, n if steps_per_epoch is None else steps_per_epoch, None)
    if callable(data):
        if steps_per_epoch is None:
            raise ValueError("fit: train_data given as a callable step -> batches needs "
                             "steps_per_epoch.")
        return TrainSource(data, steps_per_epoch, None)
    raise TypeError(
        "fit: train_data must be a jflows.data.BatchIterator (from_step, steps_per_epoch), a "
        "sequence of batches, or a callable step -> iterator of batches; got "
        f"{type(data).__name__}. A one-shot iterator cannot be resumed: wrap its source "
        "in one of these."
    )


def eval_batches(data) -> Callable[[], Iterator]:
    """A function giving a fresh pass over validation data; see the module docstring."""
    if hasattr(data, "epoch") and hasattr(data, "steps_per_epoch"):
        return lambda: iter(data.epoch(0))
    if isinstance(data, Sequence):
        return lambda: iter(data)
    if callable(data):
        return lambda: iter(data())
    raise TypeError(
        "fit: validation_data must be a jflows.data.BatchIterator, a sequence of batches or "
        f"a callable returning an iterable of batches; got {type(data).__name__} (a one-shot "
        "iterator would be empty from the second epoch on)."
    )
