"""Figures of the FFJORD toy experiment (matplotlib ``Figure``, no pyplot state)."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from experiments.chunked import map_in_chunks

LIMITS = (-3.0, 3.0)


def _forward(flow, params, state, x):
    return map_in_chunks(lambda p, s, v: flow.bijector.forward(p, s, v)[0],
                         (params["bijector"], state["bijector"]), (x,))


def _log_prob(flow, params, state, x):
    return map_in_chunks(flow.log_prob, (params, state), (x,))


def four_panel(flow, params, state, data, key, path: Path, title: str,
               num_samples: int = 2000, num_lines: int = 13) -> None:
    """The TFP tutorial's panels: warped grid, base samples, transformed samples, data.

    The grid is ``num_lines`` horizontal and vertical lines over the base's
    ``[-3, 3]^2``, pushed through the flow's forward map.
    """
    samples = np.asarray(flow.base.sample(params["base"], state["base"], key, (num_samples,)))
    transformed = _forward(flow, params, state, jnp.asarray(samples))
    ticks, line = np.linspace(*LIMITS, num_lines), np.linspace(*LIMITS, 200)
    lines = [np.stack([np.full_like(line, c), line], -1) for c in ticks]
    lines += [np.stack([line, np.full_like(line, c)], -1) for c in ticks]
    warped = _forward(flow, params, state, jnp.asarray(np.concatenate(lines), jnp.float32))
    warped = warped.reshape(len(lines), len(line), 2)
    fig = Figure(figsize=(16, 4))
    axes = fig.subplots(1, 4)
    for curve in warped:
        axes[0].plot(curve[:, 0], curve[:, 1], color="tab:gray", lw=0.6)
    panels = [("warped grid", None), ("base samples", samples),
              ("transformed samples", transformed), ("data", np.asarray(data)[:num_samples])]
    for ax, (name, points) in zip(axes, panels, strict=True):
        if points is not None:
            ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5)
        ax.set_title(name)
        ax.set_xlim(*LIMITS)
        ax.set_ylim(*LIMITS)
        ax.set_aspect("equal")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def density_grid(runs: dict, path: Path, resolution: int = 150) -> None:
    """One row per dataset: data, learned density ``exp(log p)`` (exact trace), samples."""
    fig = Figure(figsize=(9, 3 * len(runs)))
    axes = fig.subplots(len(runs), 3, squeeze=False)
    for row, (name, run) in zip(axes, runs.items(), strict=True):
        data = np.asarray(run["data"])
        low, high = data.min(0) - 0.5, data.max(0) + 0.5
        xs, ys = np.linspace(low[0], high[0], resolution), np.linspace(low[1], high[1], resolution)
        grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2).astype(np.float32)
        density = np.exp(_log_prob(run["flow"], run["params"], run["state"], jnp.asarray(grid)))
        samples = np.asarray(run["flow"].sample(run["params"], run["state"], jax.random.key(0),
                                                (len(data),)))
        row[0].hist2d(data[:, 0], data[:, 1], bins=resolution // 2,
                      range=[[low[0], high[0]], [low[1], high[1]]])
        row[1].imshow(density.reshape(resolution, resolution), origin="lower",
                      extent=(low[0], high[0], low[1], high[1]), aspect="auto")
        row[2].hist2d(samples[:, 0], samples[:, 1], bins=resolution // 2,
                      range=[[low[0], high[0]], [low[1], high[1]]])
        for ax, what in zip(row, ("data", "learned density", "samples"), strict=True):
            ax.set_title(f"{name}: {what}")
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def rnode_comparison(groups: dict, path: Path) -> None:
    """Per group (a tolerance setting): NFE per solve and training NLL per epoch of each run."""
    fig = Figure(figsize=(10, 4 * len(groups)))
    axes = fig.subplots(len(groups), 2, squeeze=False)
    for row, (group, results) in zip(axes, groups.items(), strict=True):
        for tag, result in results.items():
            epochs = np.arange(1, len(result["nfe_per_solve"]) + 1)
            row[0].plot(epochs, result["nfe_per_solve"], label=tag)
            row[1].plot(epochs, result["train_nll_per_epoch"], label=tag)
        row[0].set_ylabel("NFE per solve (training, data -> base)")
        row[1].set_ylabel("training NLL (nats)")
        for ax in row:
            ax.set_title(group)
            ax.set_xlabel("epoch")
            ax.legend()
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
