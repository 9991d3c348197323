"""Where a run's numbers go: JSONL, CSV, TensorBoard (when installed), a learning-curve PNG.

Every record is a flat dict ``{"step", "epoch", "split", <metric>: value, ...}`` with
``split`` one of ``"train"`` (averages over the last logging window), ``"train_epoch"``
(over the epoch) and ``"validation"``. Files, under ``workdir``:

* ``metrics.jsonl``: one JSON record per line, appended and flushed as they come;
* ``metrics.csv``: the same records as a table (union of the columns), rewritten at
  :meth:`MetricsLog.flush_tables`;
* ``tensorboard/``: scalars ``<split>/<metric>`` when ``tensorboardX`` (or TensorFlow, via
  ``flax.metrics.tensorboard``) can be imported; otherwise nothing;
* ``learning_curve.png``: the training loss and the validation metric against steps.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path


def _tensorboard_writer(directory: Path):
    try:
        from tensorboardX import SummaryWriter

        writer = SummaryWriter(str(directory))
        return lambda tag, value, step: writer.add_scalar(tag, value, step), writer.close
    except ImportError:
        pass
    try:
        from flax.metrics.tensorboard import SummaryWriter

        writer = SummaryWriter(str(directory))
        return lambda tag, value, step: writer.scalar(tag, value, step), writer.close
    except ImportError:
        return None


class MetricsLog:
    """Records of one run under ``workdir``; see the module docstring."""

    FILES = ("metrics.jsonl", "metrics.csv", "learning_curve.png", "tensorboard")
    """What it writes under ``workdir`` (``fit``'s ``Checkpointing(overwrite=True)`` deletes
    these and the checkpoints, nothing else)."""

    def __init__(self, workdir, *, tensorboard: bool = True):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        jsonl, csv_name, plot, _ = self.FILES
        self.jsonl_path = self.workdir / jsonl
        self.csv_path = self.workdir / csv_name
        self.plot_path = self.workdir / plot
        self.records: list[dict] = []
        if self.jsonl_path.exists():
            with self.jsonl_path.open() as f:
                self.records = [json.loads(line) for line in f if line.strip()]
        self._file = self.jsonl_path.open("a")
        self._tensorboard = (_tensorboard_writer(self.workdir / self.FILES[3])
                             if tensorboard else None)

    def keep_until(self, step: int) -> None:
        """Drop the records after ``step`` (a resumed run writes them again)."""
        kept = [r for r in self.records if r["step"] <= step]
        if len(kept) != len(self.records):
            self.records = kept
            self._file.close()
            with self.jsonl_path.open("w") as f:
                f.writelines(json.dumps(r) + "\n" for r in kept)
            self._file = self.jsonl_path.open("a")

    def write(self, record: dict) -> None:
        self.records.append(record)
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tensorboard is not None:
            scalar, _ = self._tensorboard
            for name, value in record.items():
                if name not in ("step", "epoch", "split") and math.isfinite(value):
                    scalar(f"{record['split']}/{name}", value, record["step"])

    def flush_tables(self) -> None:
        """Rewrite ``metrics.csv`` from the records."""
        columns = ["step", "epoch", "split"]
        for record in self.records:
            columns += [k for k in record if k not in columns]
        with self.csv_path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.records)

    def plot(self, monitor: str) -> Path | None:
        """Save the learning curve: train ``loss`` and validation ``monitor`` vs step."""
        from matplotlib.figure import Figure  # no pyplot: leaves the user's backend alone

        def series(split, name):
            points = [(r["step"], r[name]) for r in self.records
                      if r["split"] == split and name in r and math.isfinite(r[name])]
            return list(zip(*points, strict=True)) if points else None

        curves = [("train", "loss", "train loss"), ("validation", monitor, f"validation {monitor}")]
        fig = Figure(figsize=(6, 4))
        ax = fig.subplots()
        for split, name, label in curves:
            points = series(split, name)
            if points:
                ax.plot(*points, marker="o" if split == "validation" else None, label=label)
        ax.set_xlabel("step")
        ax.set_ylabel("value")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(self.plot_path, dpi=100)
        return self.plot_path

    def close(self) -> None:
        self._file.close()
        if self._tensorboard is not None:
            self._tensorboard[1]()
