"""``fit``'s options, grouped by concern (in the spirit of diffrax's ``SaveAt``).

Each group is a small frozen dataclass that checks its own values when built, so a bad
option fails at once, with the name of the group and the value, not epochs later:

* :class:`Validation`: what to evaluate after each epoch, what "best" means, early
  stopping;
* :class:`Checkpointing`: how often to save, how many to keep, resume or start over;
* :class:`Logging`: how often metrics are fetched and written, the progress bar,
  TensorBoard;
* :class:`Parallel`: the data-parallel mode, the devices, prefetching.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Sequence
from typing import Any


def _positive_int(owner: str, name: str, value, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        allowed = "a positive integer or None" if optional else "a positive integer"
        raise ValueError(f"{owner}: {name} must be {allowed}, got {value!r}.")


@dataclasses.dataclass(frozen=True)
class Validation:
    """Evaluate after every epoch; keep the best epoch; optionally stop early.

    Attributes:
      eval_step: from :func:`~jflows.train.make_eval_step`.
      data: the validation batches (a ``BatchIterator``, a sequence of batches, or a
        callable returning fresh batches; see :mod:`jflows.train.sources`).
      monitor: the metric of ``eval_step`` that decides "best" and early stopping. None:
        ``"loss"`` when the eval step reports it, else its only metric; with several and
        none called ``"loss"`` it must be named. Checked against the eval step's metric
        names before the first training step.
      maximize: larger is better (e.g. a log-likelihood); default smaller is better.
      patience: stop after this many epochs without improvement (None: never stop early;
        the MAF paper used 30).
      restore_best: ``fit``'s ``state`` carries the best epoch's params, model state and
        EMA (else the last ones).
    """

    eval_step: Callable
    data: Any
    monitor: str | None = None
    maximize: bool = False
    patience: int | None = None
    restore_best: bool = True

    def __post_init__(self):
        if not callable(self.eval_step):
            raise TypeError("Validation: eval_step must be the function from make_eval_step, "
                            f"got {type(self.eval_step).__name__}.")
        if self.data is None:
            raise ValueError("Validation: data is None; pass the validation batches.")
        _positive_int("Validation", "patience", self.patience, optional=True)

    def resolve_monitor(self, metric_names: Sequence[str]) -> str:
        """The monitored metric among the eval step's ``metric_names``, or a clear error."""
        names = sorted(metric_names)
        if self.monitor is not None:
            if self.monitor not in names:
                raise ValueError(f"fit: Validation(monitor={self.monitor!r}) is not among the "
                                 f"eval step's metrics {names}.")
            return self.monitor
        if "loss" in names:
            return "loss"
        if len(names) == 1:
            return names[0]
        raise ValueError("fit: the eval step reports several metrics and none is called "
                         f"'loss' ({names}); name the one to monitor: "
                         "Validation(..., monitor=...).")


@dataclasses.dataclass(frozen=True)
class Checkpointing:
    """Checkpoints under ``<workdir>/checkpoints`` (only when ``fit`` has a ``workdir``).

    Attributes:
      every: also save every this many steps (always: at each new best validation and at
        the end). None: only those.
      keep: how many of the latest periodic checkpoints to keep.
      resume: continue from the newest usable checkpoint of the workdir; a fresh start
        when it holds none. A workdir written by a different model (other structure,
        shapes or dtypes) is refused, with the mismatch named, and left untouched.
      overwrite: delete the workdir's checkpoints and metric files and start over. Without
        it (and without ``resume``) a workdir that holds checkpoints is refused.
    """

    every: int | None = None
    keep: int = 2
    resume: bool = False
    overwrite: bool = False

    def __post_init__(self):
        _positive_int("Checkpointing", "every", self.every, optional=True)
        _positive_int("Checkpointing", "keep", self.keep)
        if self.resume and self.overwrite:
            raise ValueError("Checkpointing: resume=True and overwrite=True contradict each "
                             "other; choose one.")


@dataclasses.dataclass(frozen=True)
class Logging:
    """Metric fetching, files and progress.

    Attributes:
      every: fetch the step metrics, update the progress bar and write a ``train`` record
        every this many steps (and at checkpoints and epoch ends). The non-finite guard
        acts on fetched metrics, so it may act up to ``every - 1`` steps late.
      progress: a tqdm bar and a line per epoch (process 0 only).
      tensorboard: also write TensorBoard scalars when a writer can be imported.
    """

    every: int = 50
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self):
        _positive_int("Logging", "every", self.every)


@dataclasses.dataclass(frozen=True)
class Parallel:
    """Where and how the step runs; see :func:`~jflows.train.data_parallel`.

    Attributes:
      mode: ``"jit"`` (default: global batch, ``NamedSharding``), ``"shard_map"`` or
        ``"pmap"`` (per-device code).
      devices: the devices of every process (default all).
      prefetch: batches put on the devices ahead of use by a background thread; 0: none;
        None: 2 on accelerators, 0 on CPU (where a transfer is a memory copy and the
        thread only competes for the cores: measured in BENCHMARKS.md).
    """

    mode: str | None = None
    devices: Sequence | None = None
    prefetch: int | None = None

    def __post_init__(self):
        if self.prefetch is not None and (not isinstance(self.prefetch, numbers.Integral)
                                          or self.prefetch < 0):
            raise ValueError(f"Parallel: prefetch must be an integer >= 0 or None, got "
                             f"{self.prefetch!r}.")
