"""Configuration of the GAS experiment (the seed's and the MAF paper's MAF(10) on GAS)."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Config:
    """MAF(10): 10 MADE-affine layers of 2 x 100 tanh units, batch norm after each, order
    reversed between layers, standard normal base; Adam lr 1e-4, batch 100, L2 1e-6, early
    stopping after 30 epochs without validation improvement."""

    source: str = "maf"  # "maf": the MAF archive's pickle (needs pandas); "uci": raw txt
    data_path: str | None = None  # a local GAS file instead of the download cache
    data_dir: str | None = None  # jflows.data cache directory
    num_layers: int = 10
    hidden_sizes: tuple[int, ...] = (100, 100)
    activation: str = "tanh"
    batch_norm: bool = True
    learning_rate: float = 1e-4
    batch_size: int = 100
    weight_decay: float = 1e-6
    patience: int = 30
    max_epochs: int = 1000
    max_steps: int | None = None  # stop earlier (for short runs)
    num_samples: int = 2000  # flow samples drawn for the plot
    seed: int = 0
    out_dir: str = "runs/maf_gas"


# The paper's Table 1, MAF (10) on GAS: test log-likelihood (nats), +- 2 standard errors.
PAPER_TEST_LOG_LIKELIHOOD = (10.08, 0.02)
