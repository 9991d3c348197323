"""What ``fit`` does around its steps, as small objects with one job each.

``fit`` is a driver: it runs the steps, evaluates, keeps the best epoch and checkpoints,
and tells its hooks what happened. A hook subclasses :class:`Hook` and overrides the
events it needs:

* ``on_start(run)``: once, before the first step (``run`` is a :class:`Run`);
* ``on_window(record, num_steps)``: every ``Logging.every`` steps (and at checkpoints and
  epoch ends) with the window's averaged training metrics;
* ``before_eval(state) -> state``: before each validation, on a host copy of the
  :class:`~jflows.train.TrainState`; the returned state is what is evaluated *and* what is
  kept as the best epoch's (training itself goes on from the unchanged state);
* ``on_epoch(record)``: after each epoch (``record`` as in ``FitResult.history``);
* ``on_end()``: once, when ``fit`` ends (also on an error).

``fit`` adds :class:`ProgressBar` (``Logging.progress``) and :class:`MetricsWriter`
(with a ``workdir``) itself; :class:`RecomputeBatchNorm` is the MAF paper's
``before_eval``. Hooks run on every process; :attr:`Run.main` tells process 0.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
from tqdm.auto import tqdm

from jflows.bijectors import recompute_batch_norm_statistics
from jflows.train.metrics_log import MetricsLog


@dataclasses.dataclass(frozen=True)
class Run:
    """What a hook is told at the start of ``fit``.

    Attributes: ``epochs``, ``steps_per_epoch``, ``total_steps``, ``start_step`` (> 0 after
    a resume), ``workdir`` (None without one), ``main`` (process 0), ``monitor`` (the
    validation metric that decides the best epoch, or None without validation).
    """

    epochs: int
    steps_per_epoch: int
    total_steps: int
    start_step: int
    workdir: Path | None
    main: bool
    monitor: str | None


class Hook:
    """Base class: every event does nothing. See the module docstring for the events."""

    def on_start(self, run: Run) -> None:
        pass

    def on_window(self, record: dict, num_steps: int) -> None:
        pass

    def before_eval(self, state):
        return state

    def on_epoch(self, record: dict) -> None:
        pass

    def on_end(self) -> None:
        pass


def _epoch_line(record: dict, epochs: int) -> str:
    parts = [f"epoch {record['epoch'] + 1}/{epochs} (step {record['step']}, "
             f"{record['seconds']:.3g} s)"]
    for split in ("train", "validation"):
        for name, value in sorted(record.get(split, {}).items()):
            parts.append(f"{split} {name} {value:.5g}")
    return ", ".join(parts)


class ProgressBar(Hook):
    """A tqdm bar per epoch (loss and examples/s) and a summary line after it (process 0)."""

    def __init__(self):
        self._bar = None
        self._run = None

    def on_start(self, run: Run) -> None:
        self._run = run if run.main else None

    def on_window(self, record: dict, num_steps: int) -> None:
        if self._run is None:
            return
        if self._bar is None:
            spe = self._run.steps_per_epoch
            epoch = record["epoch"]
            done = record["step"] - num_steps - epoch * spe
            total = min(spe, self._run.total_steps - epoch * spe)
            self._bar = tqdm(total=total, initial=done, leave=False, dynamic_ncols=True,
                             desc=f"epoch {epoch + 1}/{self._run.epochs}")
        self._bar.update(num_steps)
        self._bar.set_postfix(loss=f"{record.get('loss', float('nan')):.4g}",
                              ex_s=f"{record['examples_per_s']:.3g}")

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def on_epoch(self, record: dict) -> None:
        self._close_bar()
        if self._run is not None:
            tqdm.write(_epoch_line(record, self._run.epochs))

    def on_end(self) -> None:
        self._close_bar()


class MetricsWriter(Hook):
    """``metrics.jsonl`` / ``.csv``, TensorBoard and ``learning_curve.png`` under the
    workdir (process 0; see :mod:`jflows.train.metrics_log`). On a resume the records
    after the restored step are dropped first: they are written again."""

    def __init__(self, workdir, *, tensorboard: bool = True):
        self.workdir = Path(workdir)
        self.tensorboard = tensorboard
        self._log = None
        self._monitor = None

    def on_start(self, run: Run) -> None:
        if not run.main:
            return
        self._log = MetricsLog(self.workdir, tensorboard=self.tensorboard)
        self._log.keep_until(run.start_step)
        self._monitor = run.monitor or "loss"

    def on_window(self, record: dict, num_steps: int) -> None:
        if self._log is not None:
            self._log.write(record)

    def on_epoch(self, record: dict) -> None:
        if self._log is None:
            return
        where = {"step": record["step"], "epoch": record["epoch"]}
        self._log.write({**where, "split": "train_epoch", **record["train"],
                         "seconds": record["seconds"]})
        if "validation" in record:
            self._log.write({**where, "split": "validation", **record["validation"]})
        self._log.flush_tables()

    def on_end(self) -> None:
        if self._log is not None:
            self._log.flush_tables()
            self._log.plot(self._monitor)
            self._log.close()
            self._log = None


class RecomputeBatchNorm(Hook):
    """Before each validation, set every batch-norm layer of ``flow``'s bijector to the
    statistics of the training data ``x`` (the MAF paper's protocol, Papamakarios et al.
    2017, Sec. 4: validation and test use full-training-set statistics).

    ``flow`` is a ``jflows.distributions.transformed`` flow (params and model state are
    ``{'base', 'bijector'}`` dicts); the statistics are computed with the params that are
    evaluated (the EMA when the state keeps one). ``max_rows`` evenly spaced rows of ``x``
    are used when given (one pass must fit in memory). The kept best epoch carries these
    statistics, so ``fit``'s returned state is ready for testing.
    """

    def __init__(self, flow, x, *, cond=None, max_rows: int | None = None):
        step = 1 if max_rows is None else max(1, len(x) // max_rows)
        self._x = jnp.asarray(x[::step])
        self._cond = None if cond is None else jnp.asarray(cond[::step])
        bijector = flow.bijector
        self._recompute = jax.jit(lambda p, s, v, c: recompute_batch_norm_statistics(
            bijector, p, s, v, cond=c))

    def before_eval(self, state):
        params = state.ema_params if state.ema_params is not None else state.params
        model_state = dict(state.model_state)
        model_state["bijector"] = self._recompute(params["bijector"], model_state["bijector"],
                                                  self._x, self._cond)
        return state._replace(model_state=model_state)
