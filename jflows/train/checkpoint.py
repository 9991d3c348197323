"""Orbax checkpoints of a training run: the latest few and the best, verified on restore.

Layout under ``directory``::

    latest/<step>/{state, meta}   every N steps and at the end (the newest ``keep`` kept)
    best/<step>/{state, meta}     at each new best validation (the newest two kept)

``state`` is the host (NumPy) copy of a :class:`~jflows.train.TrainState`, so a checkpoint
does not depend on the device layout: a run saved under ``pmap`` on 8 devices resumes under
``shard_map`` on 1. ``meta`` is a JSON dict (the loop's own state) plus ``digest``, a CRC-32
over every array's shape, dtype and bytes, and ``signature``, every array's path, shape and
dtype.

Orbax writes each checkpoint into a temporary directory and renames it when complete, so a
save interrupted by a crash never shows up as a step. A checkpoint that is present but
unreadable or whose arrays do not match the digest (a truncated or overwritten file) is
*corrupt*: :meth:`Checkpoints.restore_latest` warns and falls back to the previous one
(the event-loop noise tensorstore can print for a failed read is kept out of the output).
A checkpoint whose signature differs from the state it is restored into was written by a
*different model*: that is an :class:`IncompatibleCheckpointError` naming the first
mismatch, never a fallback, and nothing is deleted.
"""

from __future__ import annotations

import contextlib
import gc
import shutil
import sys
import warnings
import zlib
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp


class CheckpointWarning(UserWarning):
    """A checkpoint could not be used and an older one (or none) was used instead."""


class CorruptCheckpointError(RuntimeError):
    """A checkpoint's arrays do not match the digest saved with them, or no checkpoint of a
    directory that holds some is usable."""


class IncompatibleCheckpointError(ValueError):
    """A checkpoint holds a state of another structure, shape or dtype (another model)."""


def tree_signature(tree) -> list[list]:
    """``[path, shape, dtype]`` of every leaf, in tree order (JSON-able)."""
    return [[jax.tree_util.keystr(path), list(np.shape(leaf)), np.asarray(leaf).dtype.str]
            for path, leaf in jax.tree_util.tree_leaves_with_path(tree)]


def _first_mismatch(saved: list, expected: list) -> str | None:
    """A sentence naming the first difference between two signatures, or None."""
    saved_paths = {entry[0]: entry for entry in saved}
    expected_paths = {entry[0]: entry for entry in expected}
    for path, (_, shape, dtype) in expected_paths.items():
        if path not in saved_paths:
            return f"this state has {path} (shape {tuple(shape)}), the checkpoint does not"
        _, saved_shape, saved_dtype = saved_paths[path]
        if (saved_shape, saved_dtype) != (shape, dtype):
            return (f"{path} is {tuple(saved_shape)} {np.dtype(saved_dtype).name} in the "
                    f"checkpoint, {tuple(shape)} {np.dtype(dtype).name} in this state")
    extra = sorted(set(saved_paths) - set(expected_paths))
    if extra:
        return f"the checkpoint has {extra[0]}, this state does not"
    return None


@contextlib.contextmanager
def _quiet_event_loop_errors():
    """Keep tensorstore's "Event loop is closed" reports of a failed read (raised from
    coroutines collected after their loop closed) out of the output; others pass."""
    previous = sys.unraisablehook

    def hook(unraisable):
        if not (isinstance(unraisable.exc_value, RuntimeError)
                and "Event loop is closed" in str(unraisable.exc_value)):
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        gc.collect()  # collect the failed read's coroutines while the filter is on
        sys.unraisablehook = previous


def tree_digest(tree) -> str:
    """CRC-32 (hex) of every leaf's shape, dtype and bytes, in tree order."""
    crc = 0
    for leaf in jax.tree.leaves(tree):
        leaf = np.ascontiguousarray(leaf)
        crc = zlib.crc32(f"{leaf.shape}{leaf.dtype.str}".encode(), crc)
        crc = zlib.crc32(leaf.view(np.uint8).reshape(-1) if leaf.size else b"", crc)
    return f"{crc:08x}"


def _manager(path: Path, keep: int, async_save: bool) -> ocp.CheckpointManager:
    # Multi-process saves synchronise on barriers named after the step: the two managers of
    # a run need their own names, or a best and a latest save at one step would collide.
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=True, enable_async_checkpointing=async_save,
        multiprocessing_options=ocp.options.MultiprocessingOptions(
            barrier_sync_key_prefix=f"jflows_{path.name}"),
    )
    return ocp.CheckpointManager(path.absolute(), options=options)


class Checkpoints:
    """The latest and best checkpoints of one run under ``directory``.

    Args:
      directory: where to keep them (created if missing).
      keep: how many of the latest checkpoints to keep.
      async_save: write in a background thread (the host copy is taken before
        :meth:`save` returns, so training may go on and donate its buffers).
    """

    def __init__(self, directory, *, keep: int = 2, async_save: bool = True):
        if keep < 1:
            raise ValueError(f"Checkpoints: keep must be >= 1, got {keep}.")
        self.directory = Path(directory)
        self._latest = _manager(self.directory / "latest", keep, async_save)
        self._best = _manager(self.directory / "best", 2, async_save)

    def latest_steps(self) -> list[int]:
        return sorted(self._latest.all_steps())

    def best_steps(self) -> list[int]:
        return sorted(self._best.all_steps())

    def save(self, step: int, state, meta: dict, *, best: bool = False) -> None:
        """Save a host copy of ``state`` with the JSON-able ``meta`` at ``step`` (replacing
        an earlier save at the same step)."""
        manager = self._best if best else self._latest
        if int(step) in manager.all_steps():
            manager.wait_until_finished()
            manager.delete(int(step))
        meta = {**meta, "step": int(step), "digest": tree_digest(state),
                "signature": tree_signature(state)}
        manager.save(int(step), args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))

    def _check_compatible(self, manager, step: int, template) -> None:
        """Raise :class:`IncompatibleCheckpointError` when the checkpoint's saved signature
        is not ``template``'s; an unreadable meta is left to the restore (corrupt)."""
        try:
            meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
        except Exception:  # noqa: BLE001 - unreadable: the restore reports it as corrupt
            return
        saved = (meta or {}).get("signature")
        mismatch = None if saved is None else _first_mismatch(saved, tree_signature(template))
        if mismatch is not None:
            raise IncompatibleCheckpointError(
                f"The checkpoint at step {step} in {manager.directory} holds the state of a "
                f"different model: {mismatch}. Nothing was restored or deleted; use a new "
                "workdir, or Checkpointing(overwrite=True) to delete that run and start over.")

    def _restore(self, manager, step: int, template):
        self._check_compatible(manager, step, template)
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(template), meta=ocp.args.JsonRestore()))
        state, meta = restored.state, restored.meta
        if tree_digest(state) != meta.get("digest"):
            raise CorruptCheckpointError(
                f"the arrays of step {step} do not match the digest saved with them")
        return state, meta

    def _restore_newest(self, manager, steps, template, what: str):
        for step in sorted(steps, reverse=True):
            try:
                with _quiet_event_loop_errors():
                    return self._restore(manager, step, template)
            except IncompatibleCheckpointError:
                raise
            except Exception as err:  # noqa: BLE001 - any other failure means "unusable"
                warnings.warn(
                    f"{what} checkpoint at step {step} in {manager.directory} is incomplete or "
                    f"corrupt ({type(err).__name__}: {err}); trying the previous one.",
                    CheckpointWarning, stacklevel=3)
        return None

    def restore_latest(self, template):
        """``(state, meta)`` of the newest usable latest checkpoint, or None when there is
        none at all.

        ``template`` is a host state of the same structure, shapes and dtypes (e.g. the
        freshly created one). Corrupt checkpoints are skipped with a
        :class:`CheckpointWarning`; when every one is, :class:`CorruptCheckpointError` (a
        silent fresh start would later overwrite them). A checkpoint of another model
        raises :class:`IncompatibleCheckpointError`.
        """
        steps = self.latest_steps()
        restored = self._restore_newest(self._latest, steps, template, "The")
        if restored is None and steps:
            raise CorruptCheckpointError(
                f"None of the checkpoints {steps} in {self._latest.directory} is usable (see "
                "the warnings above); nothing was deleted. Use a new workdir, or "
                "Checkpointing(overwrite=True) to delete them and start over.")
        return restored

    def restore_best(self, step: int, template):
        """``(state, meta)`` of the best checkpoint saved at ``step`` (or an older best one
        with a warning), or None when there is none."""
        older = [s for s in self.best_steps() if s <= step]
        if step not in older:
            warnings.warn(f"No best checkpoint at step {step} in {self.directory / 'best'}.",
                          CheckpointWarning, stacklevel=2)
        return self._restore_newest(self._best, older, template, "The best")

    def discard_after(self, step: int) -> None:
        """Delete every checkpoint newer than ``step`` (a resumed run will redo them)."""
        self.wait()
        for manager in (self._latest, self._best):
            for s in manager.all_steps():
                if s > step:
                    try:
                        manager.delete(s)
                    except Exception:  # noqa: BLE001 - a corrupt step may not delete cleanly
                        shutil.rmtree(Path(manager.directory) / str(s), ignore_errors=True)
            manager.reload()

    def delete_all(self) -> None:
        """Delete every checkpoint (latest and best) of this directory."""
        self.discard_after(-1)

    def wait(self) -> None:
        """Block until background saves are on disk."""
        self._latest.wait_until_finished()
        self._best.wait_until_finished()

    def close(self) -> None:
        self._latest.close()
        self._best.close()
