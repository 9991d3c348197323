"""Configuration of the flow-matching comparison (CFM vs maximum-likelihood FFJORD)."""

import dataclasses

from experiments.maf_demo.config import DATA_FILE

METHODS = ("ffjord_ml", "cfm_independent", "cfm_ot")
"""Maximum-likelihood FFJORD (as experiments.ffjord_toy trains it), I-CFM, OT-CFM."""

TOYS = ("moons", "8gaussians", "checkerboard", "pinwheel", "rings")


@dataclasses.dataclass(frozen=True)
class Config:
    """One comparison: the same field, source, optimiser and training budget for each method.

    The budget is CPU seconds of this process (``time.process_time``: all its threads),
    which the other jobs of a shared machine disturb far less than wall time; the methods
    train in interleaved chunks of about 1/16 of the budget, so load hits all alike.
    """

    toys: tuple[str, ...] = TOYS
    miniboone: bool = True
    miniboone_path: str = str(DATA_FILE)  # the committed sample (experiments/maf_demo/data)
    num_points: int = 8192
    num_test_points: int = 2048
    batch_size: int = 256
    toy_hidden: tuple[int, ...] = (64, 64)  # ConcatTimeMLP, tanh: the field of every method
    miniboone_hidden: tuple[int, ...] = (128, 128)
    learning_rate: float = 3e-3  # Adam, every method
    sigma: float = 0.0  # CFM path noise
    toy_budget_s: float = 8.0  # CPU seconds of training per method and toy
    miniboone_budget_s: float = 20.0
    evaluations: int = 4  # test NLLs along training (at equal fractions of the budget)
    eval_points: int = 256  # test points of those NLLs; the final one uses all
    # ML-FFJORD training solves as experiments/ffjord_toy: Dopri5, rtol 1e-3, atol 1e-5,
    # BacksolveAdjoint (fit's shard_map; diffrax issue #765), exact trace on the toys,
    # Hutchinson (Rademacher) on 43-D MINIBOONE. Every NLL: exact trace at rtol = atol = 1e-5.
    train_rtol: float = 1e-3
    train_atol: float = 1e-5
    eval_tol: float = 1e-5
    density_resolution: int = 70
    seed: int = 0
    out_dir: str = "runs/flow_matching_toy"
