"""Configuration of the FFJORD toy experiment (the TFP FFJORD tutorial's settings)."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Config:
    """One training run: a 2-D toy density, the tutorial's flow and optimiser.

    The tutorial's ``DormandPrince(atol=1e-5)`` keeps TFP's default ``rtol = 1e-3``; the
    same tolerances are used here (jflows' library default is the paper's 1e-5 / 1e-5).
    """

    dataset: str = "moons"  # a jflows.data toy: moons = make_moons(noise=0.06)
    num_points: int = 8192
    num_test_points: int = 8192  # a second draw, for a held-out NLL
    batch_size: int = 256
    base_scale: float = 0.8  # base N(0, 0.8^2 I)
    num_blocks: int = 4
    hidden: tuple[int, ...] = (8, 8)  # the tutorial's 3 layers: 2 -> 8 -> 8 -> 2, tanh
    rtol: float = 1e-3
    atol: float = 1e-5
    trace: str = "exact"  # or "hutchinson" (Rademacher noise; evaluation stays exact)
    # "recursive" (diffrax's default RecursiveCheckpointAdjoint: faster per training step
    # than backsolve in both side-by-side runs of BENCHMARKS.md, 1.1x for this small field
    # and 3.6x for a 64-64 field; fit's default jit mode differentiates it) or
    # "backsolve" (the paper's adjoint ODE; the one that works under fit's per-device
    # shard_map / pmap modes on equinox 0.13, diffrax issue #765).
    adjoint: str = "recursive"
    kinetic_weight: float = 0.0  # RNODE lambda_K
    jacobian_weight: float = 0.0  # RNODE lambda_J
    learning_rate: float = 1e-2
    epochs: int = 40
    seed: int = 0
    progress: bool = False
    out_dir: str = "runs/ffjord_toy"


OTHER_TOYS = ("8gaussians", "checkerboard", "pinwheel", "rings")
"""The toys of the density grid besides moons."""

RNODE_WEIGHTS = (0.01, 0.1)
"""lambda_K = lambda_J of the RNODE runs (both integrals are exact with the exact trace)."""

PAPER_TOLERANCES = (1e-5, 1e-5)
"""FFJORD's rtol, atol: the RNODE comparison also runs here, where solves take more steps."""
