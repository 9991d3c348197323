"""``fit``: a small driver of a data-parallel train step: epochs, validation, the best epoch
and early stopping, checkpoints that resume exactly, and a non-finite guard; progress,
metric files and anything else are hooks (:mod:`jflows.train.hooks`), options are grouped
(:mod:`jflows.train.options`).

One global step consumes one global batch. Epoch ``e`` is steps
``[e * steps_per_epoch, (e + 1) * steps_per_epoch)``; after each epoch the validation set
is evaluated (with the EMA params when the state keeps them, see
:func:`~jflows.train.make_eval_step`) and the monitored metric decides early stopping:
training stops after ``Validation.patience`` epochs without improvement (the MAF paper
used 30) and the returned state carries the params, model state and EMA of the best epoch
(as the ``before_eval`` hooks left them, e.g. with recomputed batch-norm statistics). Each
epoch's record in the history has its wall ``seconds`` (training) and ``eval_seconds``.

**Exact resume.** Everything that decides what happens next is saved: the whole
:class:`~jflows.train.TrainState` (params, optimizer and model state, EMA, the run key,
step, fault counters) and the loop's own state (validation history, best value and step,
epochs without improvement, the running sums of the epoch's training metrics). Batches are
a function of the step (``BatchIterator.from_step``) and randomness a function of
``(key, step)``, so ``fit(..., checkpointing=Checkpointing(resume=True))`` continues from
the newest usable checkpoint (printing "resumed from step N") and produces bit for bit the
params, metrics and files an uninterrupted run would (timings aside). A workdir written by
a different model is refused with the mismatch named, and nothing in it is deleted.

**Averaging.** Per-step metrics are averages over the global batch (exact: equal shards).
Epoch metrics weight each step by its number of examples and leave out skipped
(non-finite) steps. Validation metrics weight each batch by its size, so they are the exact
means over the validation set when ``eval_fn`` returns per-shard means. A smaller last
batch (``drop_remainder=False``): in training it is trimmed to a multiple of the local
device count (a warning names the rows left out; with several processes this is an error:
use ``drop_remainder=True``); in validation it is evaluated whole on one device.

**Non-finite guard.** Skipped steps never touch the params (see
:func:`~jflows.train.make_train_step`); after ``max_nonfinite_streak`` consecutive ones
:class:`NonFiniteTrainingError` is raised, nothing more is saved, and the checkpoints
already written stay. The check runs when metrics are fetched (every ``Logging.every``
steps), so training may run up to ``every - 1`` steps past the streak before stopping.
Skipped steps are left out of the averages, but their own metrics are not lost: a train
record's ``skipped_<name>`` is the mean of ``<name>`` over the window's skipped steps
(e.g. an FFJORD step's ``failed_solves``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jflows.data import prefetch_to_device
from jflows.train.checkpoint import Checkpoints
from jflows.train.hooks import Hook, MetricsWriter, ProgressBar, Run
from jflows.train.metrics_log import MetricsLog
from jflows.train.options import Checkpointing, Logging, Parallel, Validation, _positive_int
from jflows.train.parallel import DataParallel, data_parallel, on_one_device
from jflows.train.sources import eval_batches, train_source
from jflows.train.state import TrainState


class NonFiniteTrainingError(RuntimeError):
    """Too many consecutive steps had a non-finite loss or gradient.

    Attributes: ``state`` (the last state; its params are those of the last good step),
    ``step`` (where the streak reached the limit), ``checkpoint_step`` (the newest
    checkpoint kept, or None).
    """

    def __init__(self, message, *, state, step, checkpoint_step):
        super().__init__(message)
        self.state = state
        self.step = step
        self.checkpoint_step = checkpoint_step


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
      state: the state to use: with validation and ``restore_best``, the last state with
        the params, model state and EMA of the best validation epoch; else the last state.
      last_state: the state after the last step.
      history: one record per epoch: ``{"epoch", "step", "seconds", "train": {...}}`` plus
        ``"validation": {...}`` and ``"eval_seconds"`` with validation.
      best_step, best_metric: where the monitored validation metric was best, and its value.
      stop_reason: ``"epochs"``, ``"max_steps"`` or ``"early_stopping"``.
      workdir: where metrics, plot and checkpoints went (None without one).
    """

    state: TrainState
    last_state: TrainState
    history: list
    best_step: int | None
    best_metric: float | None
    stop_reason: str
    workdir: Path | None


@dataclasses.dataclass
class _LoopState:
    """The loop's own state, saved as JSON with every checkpoint."""

    history: list = dataclasses.field(default_factory=list)
    best_metric: float | None = None
    best_step: int | None = None
    bad_epochs: int = 0
    epoch_sums: dict = dataclasses.field(default_factory=dict)
    epoch_examples: float = 0.0
    epoch_skipped: int = 0
    stop_reason: str | None = None


def _to_host(tree):
    """A NumPy copy (never a view of a device buffer that a later step may donate)."""
    return jax.tree.map(lambda x: np.array(x, copy=True), tree)


def _to_device(tree):
    return jax.tree.map(jnp.asarray, tree)


def _num_rows(batch) -> int:
    return int(np.shape(jax.tree.leaves(batch)[0])[0])


class _Trimmer:
    """Trims a host training batch to a multiple of the local device count (warning once)."""

    def __init__(self, runner: DataParallel):
        self.runner = runner
        self.standard = None
        self.warned = False

    def __call__(self, batch):
        rows = _num_rows(batch)
        if self.standard is None:
            self.standard = rows
        if rows != self.standard and self.runner.multi_process:
            raise ValueError(
                f"fit: a training batch has {rows} local rows, the others {self.standard}. "
                "With several processes every step needs equal batches: use "
                "BatchIterator(..., drop_remainder=True).")
        keep = rows - rows % self.runner.num_local_devices
        if keep == rows:
            return batch
        if not self.warned:
            warnings.warn(
                f"fit: a training batch of {rows} rows does not split evenly over "
                f"{self.runner.num_local_devices} devices; its last {rows - keep} rows are "
                "left out (drop_remainder=True avoids this).", stacklevel=4)
            self.warned = True
        if keep == 0:
            return None
        return jax.tree.map(lambda x: x[:keep], batch)


@functools.lru_cache(maxsize=64)
def _packed(train_step):
    """``(step, names)``: ``train_step`` with its metrics dict packed into one array (one
    fetch per step); the metric names are recorded into the list ``names`` when the step
    is traced. Cached, so that ``fit`` with the same ``train_step`` reuses its compilation.
    """
    names = []

    def step(state, batch):
        state, metrics = train_step(state, batch)
        names[:] = sorted(metrics)
        return state, jnp.stack([jnp.asarray(metrics[k], jnp.float32) for k in names])

    return step, names


def _evaluate(runner: DataParallel, tail, dstate, batches) -> dict:
    """Means of the eval metrics over a pass, each batch weighted by its rows.

    Batches that split evenly over the devices run data-parallel; a smaller last batch runs
    on one device (``tail``), its sums combined across processes.
    """
    global_parts, local_parts = [], []
    standard, host_state = None, None
    ahead = iter(batches)
    batch = next(ahead, None)
    index = 0
    while batch is not None:
        following = next(ahead, None)
        rows = _num_rows(batch)
        standard = rows if standard is None else standard
        is_last = following is None
        if (rows == standard and rows % runner.num_local_devices == 0
                and not (is_last and runner.multi_process)):
            metrics = runner(dstate, batch, index)
            global_parts.append((metrics, rows * (runner.num_devices // runner.num_local_devices)))
        else:
            if host_state is None:
                host_state = runner.unreplicate(dstate)
            local_parts.append((tail(host_state, batch, index), rows))
        batch, index = following, index + 1

    def weighted_sums(parts, fetch):
        sums, total = {}, 0.0
        for metrics, rows in parts:
            for name, value in fetch(metrics).items():
                sums[name] = sums.get(name, 0.0) + float(value) * rows
            total += rows
        return sums, total

    sums, total = weighted_sums(global_parts, runner.unreplicate)
    tail_sums, tail_total = weighted_sums(local_parts, jax.device_get)
    if runner.multi_process:
        from jax.experimental import multihost_utils

        names = sorted(set(tail_sums) | set(sums))
        local = np.array([tail_sums.get(n, 0.0) for n in names] + [tail_total])
        gathered = np.asarray(multihost_utils.process_allgather(local)).sum(axis=0)
        tail_sums, tail_total = dict(zip(names, gathered[:-1], strict=True)), gathered[-1]
    for name, value in tail_sums.items():
        sums[name] = sums.get(name, 0.0) + value
    total += tail_total
    if total == 0:
        raise ValueError("fit: the validation data gave no batches.")
    return {name: float(value / total) for name, value in sums.items()}


def fit(
    state: TrainState,
    train_step,
    train_data,
    *,
    epochs: int,
    validation: Validation | None = None,
    workdir=None,
    checkpointing: Checkpointing = Checkpointing(),
    logging: Logging = Logging(),
    parallel: Parallel = Parallel(),
    hooks: Sequence[Hook] = (),
    max_steps: int | None = None,
    steps_per_epoch: int | None = None,
    max_nonfinite_streak: int = 10,
) -> FitResult:
    """Train ``state`` with ``train_step`` data-parallel over the devices.

    Args:
      state: the starting :class:`~jflows.train.TrainState` (host arrays).
      train_step: from :func:`~jflows.train.make_train_step`.
      train_data: a ``jflows.data.BatchIterator``, a sequence of batches, or a callable
        ``step -> batches`` with ``steps_per_epoch`` (see :mod:`jflows.train.sources`).
        Batches are this process's part of each global batch.
      epochs: number of epochs to train for (counted from step 0, so a resumed run ends
        where an uninterrupted one would).
      validation: a :class:`~jflows.train.Validation` (eval step, data, monitored metric,
        early stopping), evaluated after every epoch; None: no validation.
      workdir: directory for the metric files and ``checkpoints/``; None writes nothing.
      checkpointing: a :class:`~jflows.train.Checkpointing` (period, resume, overwrite).
      logging: a :class:`~jflows.train.Logging` (metric period, progress bar, TensorBoard).
      parallel: a :class:`~jflows.train.Parallel` (mode, devices, prefetch).
      hooks: further :class:`~jflows.train.Hook` objects (e.g.
        :class:`~jflows.train.RecomputeBatchNorm`), called after the built-in ones.
      max_steps: stop after this many global steps in all, even mid-epoch (validation runs
        at epoch ends only; a resumed run finishes the epoch).
      steps_per_epoch: for a callable ``train_data`` (or to override the iterator's).
      max_nonfinite_streak: stop after this many consecutive skipped (non-finite) steps.

    Raises:
      NonFiniteTrainingError: after ``max_nonfinite_streak`` consecutive skipped steps.
      IncompatibleCheckpointError: ``resume`` in a workdir written by a different model.
    """
    _check_fit_arguments(epochs, max_steps, max_nonfinite_streak, validation, workdir,
                         checkpointing, logging, parallel, hooks)
    source = train_source(train_data, steps_per_epoch)
    spe = source.steps_per_epoch
    total_steps = epochs * spe if max_steps is None else min(epochs * spe, max_steps)

    packed_step, names = _packed(train_step)
    runner = data_parallel(packed_step, parallel.mode, parallel.devices)
    if runner.multi_process and source.drop_remainder is False:
        raise ValueError("fit: with several processes use BatchIterator(..., drop_remainder=True) "
                         "so that every process has equal batches.")
    main = jax.process_index() == 0
    workdir = None if workdir is None else Path(workdir)
    host_state = _to_host(state)
    valid_pass = monitor = None
    if validation is not None:
        valid_pass = eval_batches(validation.data)
        monitor = validation.resolve_monitor(_eval_metric_names(validation.eval_step,
                                                                host_state, valid_pass))

    checkpoints = None
    if workdir is not None:
        checkpoints = Checkpoints(workdir / "checkpoints", keep=checkpointing.keep)
        _prepare_workdir(checkpoints, workdir, checkpointing)
    loop, best = _LoopState(), None  # best: host (params, model_state, ema_params)
    restored = checkpoints.restore_latest(host_state) if checkpointing.resume else None
    if restored is not None:
        host_state, meta = restored
        loop = _LoopState(**meta["loop"])
        if loop.best_step is not None:
            best_restored = checkpoints.restore_best(loop.best_step, host_state)
            if best_restored is not None:
                b = best_restored[0]
                best = (b.params, b.model_state, b.ema_params)
    start = int(host_state.step)
    if restored is not None:
        checkpoints.discard_after(start)  # a resumed run writes those steps again
        if main:
            print(f"fit: resumed from step {start} (epoch {start // spe + 1}) in "
                  f"{checkpoints.directory}.", flush=True)

    all_hooks = ([ProgressBar()] if logging.progress else []) + (
        [MetricsWriter(workdir, tensorboard=logging.tensorboard)] if workdir is not None
        else []) + list(hooks)
    evaluator = tail = None
    if validation is not None:
        evaluator = data_parallel(validation.eval_step, parallel.mode, parallel.devices,
                                  donate_state=False)
        tail = on_one_device(validation.eval_step)

    trimmed = (b for b in map(_Trimmer(runner), source.from_step(start)) if b is not None)
    prefetch = parallel.prefetch
    if prefetch is None:  # on CPU a transfer is a copy: not worth a thread
        prefetch = 0 if runner.local_devices[0].platform == "cpu" else 2
    if prefetch:
        batches = prefetch_to_device(map(runner.prepare, trimmed), prefetch,
                                     runner.batch_sharding)
    else:
        batches = trimmed  # host batches: the runner hands them to the compiled step

    def save(step, dstate_host, *, is_best=False):
        if checkpoints is not None:
            checkpoints.save(step, dstate_host, {"loop": dataclasses.asdict(loop)}, best=is_best)

    dstate = runner.replicate(host_state)
    streak = int(host_state.nonfinite_streak)
    step = start
    # a restored run that had stopped early stays stopped; one that ran out of epochs or
    # steps goes on when given more
    stop_reason = "early_stopping" if loop.stop_reason == "early_stopping" else None
    last_saved = start if restored is not None else None
    run = Run(epochs=epochs, steps_per_epoch=spe, total_steps=total_steps, start_step=start,
              workdir=workdir, main=main, monitor=monitor)
    for hook in all_hooks:
        hook.on_start(run)
    try:
        while step < total_steps and stop_reason is None:
            epoch = step // spe
            epoch_end = min((epoch + 1) * spe, total_steps)
            pending = []
            epoch_start = window_start = time.perf_counter()
            while step < epoch_end:
                batch = next(batches)
                dstate, packed = runner(dstate, batch)
                step += 1
                pending.append((packed, runner.global_batch_size(batch)))
                # at an epoch's end the checkpoint waits for the validation (below)
                at_checkpoint = (checkpointing.every is not None
                                 and step % checkpointing.every == 0 and step != epoch_end)
                # windows end at multiples of Logging.every (and at checkpoints and epoch
                # ends), so a resumed run writes the same records as an uninterrupted one
                if step % logging.every == 0 or step == epoch_end or at_checkpoint:
                    now = time.perf_counter()
                    record, streak, streak_end = _fold_window(
                        pending, names, runner, loop, streak, max_nonfinite_streak, step)
                    record.update(step=step, epoch=epoch, split="train",
                                  examples_per_s=sum(n for _, n in pending) / (now - window_start))
                    for hook in all_hooks:
                        hook.on_window(record, len(pending))
                    pending, window_start = [], now
                    if streak_end is not None:
                        raise _non_finite_error(runner, dstate, streak_end, max_nonfinite_streak,
                                                checkpoints, last_saved)
                if at_checkpoint:
                    save(step, runner.unreplicate(dstate))
                    last_saved = step
            if step % spe:  # max_steps ended mid-epoch: the epoch goes on after a resume
                break
            record = _close_epoch(loop, epoch, step)
            record["seconds"] = time.perf_counter() - epoch_start
            if validation is not None:
                eval_start = time.perf_counter()
                host = runner.unreplicate(dstate)
                evaluated = host
                for hook in all_hooks:
                    evaluated = hook.before_eval(evaluated)
                eval_state = (dstate if evaluated is host
                              else evaluator.replicate(_to_host(evaluated)))
                metrics = _evaluate(evaluator, tail, eval_state, valid_pass())
                record["validation"] = metrics
                record["eval_seconds"] = time.perf_counter() - eval_start
                value = metrics[monitor]
                if _improves(value, loop.best_metric, validation.maximize):
                    loop.best_metric, loop.best_step, loop.bad_epochs = value, step, 0
                    best_state = _to_host(evaluated)  # a copy: dstate's buffers are donated
                    best = (best_state.params, best_state.model_state, best_state.ema_params)
                    save(step, best_state, is_best=True)  # as evaluated: a resume returns it
                else:
                    loop.bad_epochs += 1
                if validation.patience is not None and loop.bad_epochs >= validation.patience:
                    stop_reason = "early_stopping"
            loop.history.append(record)
            for hook in all_hooks:
                hook.on_epoch(record)
            if checkpointing.every is not None and step % checkpointing.every == 0:
                save(step, runner.unreplicate(dstate))
                last_saved = step
        stop_reason = stop_reason or ("epochs" if step == epochs * spe else "max_steps")
        last_host = runner.unreplicate(dstate)
        if last_saved != step or loop.stop_reason != stop_reason:
            loop.stop_reason = stop_reason
            save(step, last_host)
    finally:
        batches.close()
        if checkpoints is not None:
            checkpoints.wait()
            checkpoints.close()
        for hook in all_hooks:
            hook.on_end()

    last_state = _to_device(last_host)
    result_state = last_state
    if validation is not None and validation.restore_best and best is not None:
        params, model_state, ema_params = _to_device(best)
        result_state = last_state._replace(params=params, model_state=model_state,
                                           ema_params=ema_params)
    return FitResult(result_state, last_state, loop.history, loop.best_step, loop.best_metric,
                     stop_reason, workdir)


def _check_fit_arguments(epochs, max_steps, max_nonfinite_streak, validation, workdir,
                         checkpointing, logging, parallel, hooks) -> None:
    for name, value, cls in (("validation", validation, Validation),
                             ("checkpointing", checkpointing, Checkpointing),
                             ("logging", logging, Logging), ("parallel", parallel, Parallel)):
        if not (isinstance(value, cls) or (value is None and cls is Validation)):
            raise TypeError(f"fit: {name} must be a jflows.train.{cls.__name__}, got "
                            f"{type(value).__name__}.")
    _positive_int("fit", "epochs", epochs)
    _positive_int("fit", "max_steps", max_steps, optional=True)
    _positive_int("fit", "max_nonfinite_streak", max_nonfinite_streak)
    for hook in hooks:
        if not isinstance(hook, Hook):
            raise TypeError(f"fit: hooks must be jflows.train.Hook objects, got "
                            f"{type(hook).__name__}.")
    if workdir is None and (checkpointing.resume or checkpointing.overwrite
                            or checkpointing.every is not None):
        raise ValueError("fit: Checkpointing(resume/overwrite/every) needs the workdir the "
                         "checkpoints go in; got workdir=None.")


def _eval_metric_names(eval_step, host_state, valid_pass) -> list[str]:
    """The eval step's metric names, from its shapes on the first validation batch (no
    computation), so a wrong ``monitor`` fails before training rather than after an epoch."""
    first = next(iter(valid_pass()), None)
    if first is None:
        raise ValueError("fit: the validation data gave no batches.")
    return sorted(jax.eval_shape(eval_step, host_state, first, 0))


def _prepare_workdir(checkpoints: Checkpoints, workdir: Path, checkpointing: Checkpointing):
    """Start over (``overwrite``), or refuse to write into another run's workdir."""
    if checkpointing.overwrite:
        checkpoints.delete_all()
        for name in MetricsLog.FILES:
            path = workdir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    elif not checkpointing.resume and (checkpoints.latest_steps() or checkpoints.best_steps()):
        raise ValueError(f"fit: {checkpoints.directory} already holds checkpoints; pass "
                         "Checkpointing(resume=True) to continue that run, "
                         "Checkpointing(overwrite=True) to delete it and start over, or use a "
                         "new workdir.")


def _improves(value: float, best: float | None, maximize: bool) -> bool:
    """A finite value better than the best so far (a non-finite one never is)."""
    if not math.isfinite(value):
        return False
    if best is None or not math.isfinite(best):
        return True
    return value > best if maximize else value < best


def _fold_window(pending, names, runner, loop, streak, limit, step):
    """Fetch a window's per-step metrics; add them to the epoch sums; follow the streak.

    Returns the window's train record (means over its finite steps, and ``skipped_<name>``
    means over its skipped ones), the streak after it, and the step at which the streak
    reached ``limit`` (None if it did not).
    """
    values = [runner.unreplicate(packed) for packed, _ in pending]
    skipped_column = names.index("skipped")
    sums, examples, streak_end = {}, 0.0, None
    skipped_rows = []
    first = step - len(pending) + 1
    for offset, (row, (_, rows)) in enumerate(zip(values, pending, strict=True)):
        if row[skipped_column] > 0:
            loop.epoch_skipped += 1
            skipped_rows.append(row)
            streak += 1
            if streak >= limit and streak_end is None:
                streak_end = first + offset
            continue
        streak = 0
        examples += rows
        for name, value in zip(names, row, strict=True):
            sums[name] = sums.get(name, 0.0) + float(value) * rows
    for name, value in sums.items():
        loop.epoch_sums[name] = loop.epoch_sums.get(name, 0.0) + value
    loop.epoch_examples += examples
    record = {name: value / examples for name, value in sums.items() if name != "skipped"}
    record["skipped_steps"] = len(skipped_rows)
    if skipped_rows:
        means = np.mean(skipped_rows, axis=0)
        record.update({f"skipped_{name}": float(value)
                       for name, value in zip(names, means, strict=True) if name != "skipped"})
    return record, streak, streak_end


def _close_epoch(loop: _LoopState, epoch: int, step: int) -> dict:
    """The epoch's record from the running sums, which are then reset."""
    train = {name: value / loop.epoch_examples for name, value in loop.epoch_sums.items()
             if name != "skipped"} if loop.epoch_examples else {}
    train["skipped_steps"] = loop.epoch_skipped
    loop.epoch_sums, loop.epoch_examples, loop.epoch_skipped = {}, 0.0, 0
    return {"epoch": epoch, "step": step, "train": train}


def _non_finite_error(runner, dstate, step, limit, checkpoints, last_saved):
    host = runner.unreplicate(dstate)
    where = ("no checkpoint was written" if last_saved is None
             else f"the last checkpoint (step {last_saved}) is kept in {checkpoints.directory}")
    return NonFiniteTrainingError(
        f"fit: stopped: {limit} consecutive steps (up to step {step}) had a non-finite loss or "
        f"gradient; their updates were skipped ({int(host.nonfinite_steps)} skipped steps in "
        f"all), so the params are those of the last finite step, and {where}. Check the "
        "data for NaN/inf, lower the learning rate or clip gradients "
        "(optax.clip_by_global_norm).",
        state=_to_device(host), step=step, checkpoint_step=last_saved)

