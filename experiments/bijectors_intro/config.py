"""Configuration of the bijectors introduction experiment."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Config:
    """The 2-D flow is fit to ``num_samples`` draws of ``N(true_mean, true_scale^2 I)``."""

    seed: int = 0
    num_samples: int = 1000
    true_mean: tuple[float, float] = (1.0, 1.0)
    true_scale: float = 2.0
    learning_rate: float = 1e-2
    num_steps: int = 2000  # full-batch Adam steps
    update_rank: int = 2
    num_eval_samples: int = 100_000  # flow samples used to estimate its mean and covariance
    out_dir: str = "runs/bijectors_intro"
