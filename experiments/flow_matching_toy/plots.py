"""The learning-curve figure of the flow-matching comparison (matplotlib ``Figure``)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from experiments.flow_matching_toy.config import METHODS


def nll_curves(results: dict, path: Path) -> None:
    """One panel per dataset: test NLL (exact trace) against training CPU seconds."""
    fig = Figure(figsize=(4 * len(results), 3.5))
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    for ax, (name, result) in zip(axes, results.items(), strict=True):
        for method in METHODS:
            curve = result[method]["curve"]
            ax.plot([c["cpu_s"] for c in curve], [c["nll"] for c in curve], "o-", label=method)
        ax.axhline(result["target_nll"], color="gray", lw=0.8, ls="--")
        ax.set_title(name)
        ax.set_xlabel("training CPU seconds")
        ax.set_ylabel("test NLL (nats)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
