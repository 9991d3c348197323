"""Configuration of the MNIST experiment (the MAF paper's Table 2, unconditional rows)."""

import dataclasses

# The reference code's MNIST setup: 2 hidden layers of 1024 ReLU units, sequential degrees,
# 5 layers per "stack", 10 mixture components; lr 1e-3 for MADEs, 1e-4 for flows.
MODELS = {
    #            num_layers, learning_rate, mixture components (None: Gaussian base)
    "made": (1, 1e-3, None),
    "maf5": (5, 1e-4, None),
    "maf10": (10, 1e-4, None),
    "maf_mog5": (5, 1e-4, 10),
}

# The paper's Table 2 (MNIST, unconditional): test log-likelihood in logit space (nats),
# +- 2 standard errors.
PAPER_TEST_LOG_LIKELIHOOD = {
    "made": (-1380.8, 4.8),
    "maf5": (-1300.5, 1.7),
    "maf10": (-1313.1, 2.0),
    "maf_mog5": (-1100.3, 1.6),
}


@dataclasses.dataclass(frozen=True)
class Config:
    model: str = "maf5"
    data_path: str | None = None  # None: download and cache via jflows.data; or a local file
    data_dir: str | None = None
    hidden_sizes: tuple[int, ...] = (1024, 1024)
    activation: str = "relu"
    batch_size: int = 100
    weight_decay: float = 1e-6
    patience: int = 30
    max_epochs: int = 1000
    max_steps: int | None = None  # stop earlier (short CPU runs)
    train_subset: int | None = None  # use only the first N training images (smoke tests)
    num_samples: int = 64  # the sample grid (8 x 8)
    sampling: str = "auto"  # "auto": incremental MADE evaluation; "passes": D passes
    resample: bool = False  # only draw samples from the run's latest checkpoint
    seed: int = 0
    out_dir: str = "runs/maf_mnist"
