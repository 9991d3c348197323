"""``fit``: epochs of a data-parallel train step with validation, early stopping, EMA,
checkpoints that resume exactly, a non-finite guard, a progress bar and metric files.

One global step consumes one global batch. Epoch ``e`` is steps
``[e * steps_per_epoch, (e + 1) * steps_per_epoch)``; after each epoch the validation set
is evaluated (with the EMA params when the state keeps them, see
:func:`~jflows.train.make_eval_step`) and the monitored metric decides early stopping:
training stops after ``patience`` epochs without improvement (the MAF paper used 30) and
the returned state carries the params, model state and EMA of the best epoch.

**Exact resume.** Everything that decides what happens next is saved: the whole
:class:`~jflows.train.TrainState` (params, optimizer and model state, EMA, the run key,
step, fault counters) and the loop's own state (validation history, best value and step,
epochs without improvement, the running sums of the epoch's training metrics). Batches are
a function of the step (``BatchIterator.from_step``) and randomness a function of
``(key, step)``, so ``fit(..., resume=True)`` continues from the newest usable checkpoint
and produces bit for bit the params, metrics and files an uninterrupted run would.

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
already written stay. The check runs when metrics are fetched (every ``log_every`` steps),
so training may run up to ``log_every - 1`` steps past the streak before stopping.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jflows.data import prefetch_to_device
from jflows.train.checkpoint import Checkpoints
from jflows.train.metrics_log import MetricsLog
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
      history: one record per epoch: ``{"epoch", "step", "train": {...}, "validation": {...}}``.
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
    eval_step=None,
    validation_data=None,
    monitor: str = "loss",
    maximize: bool = False,
    patience: int | None = None,
    restore_best: bool = True,
    mode: str | None = None,
    devices=None,
    workdir=None,
    checkpoint_every: int | None = None,
    keep_checkpoints: int = 2,
    resume: bool = False,
    max_nonfinite_streak: int = 10,
    log_every: int = 50,
    progress: bool = True,
    prefetch: int | None = None,
    max_steps: int | None = None,
    steps_per_epoch: int | None = None,
    tensorboard: bool = True,
) -> FitResult:
    """Train ``state`` with the per-device ``train_step`` data-parallel over ``devices``.

    Args:
      state: the starting :class:`~jflows.train.TrainState` (host arrays).
      train_step: from :func:`~jflows.train.make_train_step` (per-device, named axis).
      train_data: a ``jflows.data.BatchIterator``, a sequence of batches, or a callable
        ``step -> batches`` with ``steps_per_epoch`` (see :mod:`jflows.train.sources`).
        Batches are this process's part of each global batch.
      epochs: number of epochs to train for (counted from step 0, so a resumed run ends
        where an uninterrupted one would).
      eval_step, validation_data: from :func:`~jflows.train.make_eval_step` and the
        validation batches; evaluated after every epoch.
      monitor, maximize: the validation metric that decides "best" and early stopping.
      patience: stop after this many epochs without improvement (None: never stop early).
      restore_best: return the best epoch's params (see :class:`FitResult`).
      mode, devices: passed to :func:`~jflows.train.data_parallel`.
      workdir: directory for ``metrics.jsonl``/``.csv``, ``learning_curve.png``,
        ``tensorboard/`` and ``checkpoints/``; None writes nothing.
      checkpoint_every: save every this many steps (and always at the best validation and
        at the end, when there is a ``workdir``).
      keep_checkpoints: how many of the latest periodic checkpoints to keep.
      resume: continue from the newest usable checkpoint in ``workdir`` (fresh start when
        there is none).
      max_nonfinite_streak: stop after this many consecutive skipped (non-finite) steps.
      log_every: metric fetches, progress updates and train records happen at multiples of
        this step count (and at checkpoints and epoch ends).
      progress: show a tqdm bar (process 0 only).
      prefetch: batches put on the devices ahead of use by a background thread; 0: none,
        each host batch goes to the compiled step directly; None: 2 on accelerators, 0 on
        CPU (where a transfer is a memory copy and the thread only competes for the cores:
        measured in BENCHMARKS.md).
      max_steps: stop after this many global steps in all, even mid-epoch (validation runs
        at epoch ends only; a resumed run finishes the epoch).
      steps_per_epoch: for a callable ``train_data`` (or to override the iterator's).
      tensorboard: also write TensorBoard scalars when a writer can be imported.

    Raises:
      NonFiniteTrainingError: after ``max_nonfinite_streak`` consecutive skipped steps.
    """
    source = train_source(train_data, steps_per_epoch)
    spe = source.steps_per_epoch
    if epochs < 1 or spe < 1 or log_every < 1 or max_nonfinite_streak < 1:
        raise ValueError(
            "fit: epochs, steps per epoch, log_every and max_nonfinite_streak must be >= 1; got "
            f"{epochs}, {spe}, {log_every}, {max_nonfinite_streak}.")
    if (eval_step is None) != (validation_data is None):
        raise ValueError("fit: pass eval_step and validation_data together (or neither).")
    validate = eval_step is not None
    if patience is not None and not validate:
        raise ValueError("fit: early stopping (patience) needs eval_step and validation_data.")
    if resume and workdir is None:
        raise ValueError("fit: resume=True needs the workdir the checkpoints are in.")
    total_steps = epochs * spe if max_steps is None else min(epochs * spe, max_steps)

    packed_step, names = _packed(train_step)
    runner = data_parallel(packed_step, mode, devices)
    if runner.multi_process and source.drop_remainder is False:
        raise ValueError("fit: with several processes use BatchIterator(..., drop_remainder=True) "
                         "so that every process has equal batches.")
    main = jax.process_index() == 0
    workdir = None if workdir is None else Path(workdir)
    checkpoints = None if workdir is None else Checkpoints(workdir / "checkpoints",
                                                           keep=keep_checkpoints)
    log = MetricsLog(workdir, tensorboard=tensorboard) if workdir is not None and main else None

    host_state = _to_host(state)
    loop = _LoopState()
    best = None  # host (params, model_state, ema_params) of the best epoch
    if checkpoints is not None and not resume and (checkpoints.latest_steps()
                                                   or checkpoints.best_steps()):
        raise ValueError(f"fit: {checkpoints.directory} already holds checkpoints; pass "
                         "resume=True to continue that run, or use a new workdir (or delete "
                         "that directory to start over).")
    restored = checkpoints.restore_latest(host_state) if resume else None
    if restored is not None:
        host_state, meta = restored
        loop = _LoopState(**meta["loop"])
        if loop.best_step is not None:
            best_restored = checkpoints.restore_best(loop.best_step, host_state)
            if best_restored is not None:
                b = best_restored[0]
                best = (b.params, b.model_state, b.ema_params)
    start = int(host_state.step)
    if resume:
        checkpoints.discard_after(start)  # a resumed run writes those steps again
    if log is not None:
        log.keep_until(start)

    def save(step, dstate_host, *, is_best=False):
        if checkpoints is not None:
            checkpoints.save(step, dstate_host, {"loop": dataclasses.asdict(loop)}, best=is_best)

    evaluator = tail = None
    if validate:
        evaluator = data_parallel(eval_step, mode, devices, donate_state=False)
        tail = on_one_device(eval_step)
    valid_pass = eval_batches(validation_data) if validate else None

    trimmed = (b for b in map(_Trimmer(runner), source.from_step(start)) if b is not None)
    if prefetch is None:  # on CPU a transfer is a copy: not worth a thread
        prefetch = 0 if runner.local_devices[0].platform == "cpu" else 2
    if prefetch:
        batches = prefetch_to_device(map(runner.prepare, trimmed), prefetch,
                                     runner.batch_sharding)
    else:
        batches = trimmed  # host batches: the runner hands them to the compiled step

    dstate = runner.replicate(host_state)
    streak = int(host_state.nonfinite_streak)
    step = start
    # a restored run that had stopped early stays stopped; one that ran out of epochs or
    # steps goes on when given more
    stop_reason = "early_stopping" if loop.stop_reason == "early_stopping" else None
    last_saved = start if restored is not None else None
    try:
        while step < total_steps and stop_reason is None:
            epoch = step // spe
            epoch_end = min((epoch + 1) * spe, total_steps)
            bar = tqdm(total=epoch_end - epoch * spe, initial=step - epoch * spe,
                       desc=f"epoch {epoch + 1}/{epochs}", disable=not (progress and main),
                       leave=False, dynamic_ncols=True)
            pending = []
            window_start = time.perf_counter()
            while step < epoch_end:
                batch = next(batches)
                dstate, packed = runner(dstate, batch)
                step += 1
                pending.append((packed, runner.global_batch_size(batch)))
                # at an epoch's end the checkpoint waits for the validation (below)
                at_checkpoint = (checkpoint_every is not None and step % checkpoint_every == 0
                                 and step != epoch_end)
                # windows end at multiples of log_every (and at checkpoints and epoch ends),
                # so a resumed run writes the same records as an uninterrupted one
                if step % log_every == 0 or step == epoch_end or at_checkpoint:
                    now = time.perf_counter()
                    record, streak, streak_end = _fold_window(
                        pending, names, runner, loop, streak, max_nonfinite_streak, step)
                    record.update(step=step, epoch=epoch, split="train",
                                  examples_per_s=sum(n for _, n in pending) / (now - window_start))
                    if log is not None:
                        log.write(record)
                    bar.update(len(pending))
                    bar.set_postfix(loss=f"{record.get('loss', float('nan')):.4g}",
                                    ex_s=f"{record['examples_per_s']:.3g}")
                    pending, window_start = [], now
                    if streak_end is not None:
                        raise _non_finite_error(runner, dstate, streak_end, max_nonfinite_streak,
                                                checkpoints, last_saved)
                if at_checkpoint:
                    save(step, runner.unreplicate(dstate))
                    last_saved = step
            bar.close()
            if step % spe:  # max_steps ended mid-epoch: the epoch goes on after a resume
                break
            record = _close_epoch(loop, epoch, step)
            if log is not None:
                log.write({"step": step, "epoch": epoch, "split": "train_epoch", **record["train"]})
            if validate:
                metrics = _evaluate(evaluator, tail, dstate, valid_pass())
                if monitor not in metrics:
                    raise KeyError(f"fit: monitor {monitor!r} is not among the validation "
                                   f"metrics {sorted(metrics)}.")
                record["validation"] = metrics
                if log is not None:
                    log.write({"step": step, "epoch": epoch, "split": "validation", **metrics})
                value = metrics[monitor]
                # A non-finite value is never an improvement and never becomes the best.
                if math.isfinite(value) and (
                        loop.best_metric is None or not math.isfinite(loop.best_metric)
                        or (value > loop.best_metric if maximize else value < loop.best_metric)):
                    loop.best_metric, loop.best_step, loop.bad_epochs = value, step, 0
                    host = runner.unreplicate(dstate)
                    best = _to_host((host.params, host.model_state, host.ema_params))
                    save(step, host, is_best=True)
                else:
                    loop.bad_epochs += 1
                if patience is not None and loop.bad_epochs >= patience:
                    stop_reason = "early_stopping"
            loop.history.append(record)
            if progress and main:
                tqdm.write(_summary(record, epochs))
            if log is not None:
                log.flush_tables()
            if checkpoint_every is not None and step % checkpoint_every == 0:
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
        if log is not None:
            log.flush_tables()
            log.plot(monitor)
            log.close()

    last_state = _to_device(last_host)
    result_state = last_state
    if validate and restore_best and best is not None:
        params, model_state, ema_params = _to_device(best)
        result_state = last_state._replace(params=params, model_state=model_state,
                                           ema_params=ema_params)
    return FitResult(result_state, last_state, loop.history, loop.best_step, loop.best_metric,
                     stop_reason, workdir)


def _fold_window(pending, names, runner, loop, streak, limit, step):
    """Fetch a window's per-step metrics; add them to the epoch sums; follow the streak.

    Returns the window's train record (means over its finite steps), the streak after it,
    and the step at which the streak reached ``limit`` (None if it did not).
    """
    values = [runner.unreplicate(packed) for packed, _ in pending]
    skipped_column = names.index("skipped")
    sums, examples, streak_end = {}, 0.0, None
    first = step - len(pending) + 1
    for offset, (row, (_, rows)) in enumerate(zip(values, pending, strict=True)):
        if row[skipped_column] > 0:
            loop.epoch_skipped += 1
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
    record["skipped_steps"] = sum(1 for row in values if row[skipped_column] > 0)
    return record, streak, streak_end


def _close_epoch(loop: _LoopState, epoch: int, step: int) -> dict:
    """The epoch's record from the running sums, which are then reset."""
    train = {name: value / loop.epoch_examples for name, value in loop.epoch_sums.items()
             if name != "skipped"} if loop.epoch_examples else {}
    train["skipped_steps"] = loop.epoch_skipped
    loop.epoch_sums, loop.epoch_examples, loop.epoch_skipped = {}, 0.0, 0
    return {"epoch": epoch, "step": step, "train": train}


def _summary(record: dict, epochs: int) -> str:
    parts = [f"epoch {record['epoch'] + 1}/{epochs} (step {record['step']})"]
    for split in ("train", "validation"):
        for name, value in sorted(record.get(split, {}).items()):
            parts.append(f"{split} {name} {value:.5g}")
    return ", ".join(parts)


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

