"""Configuration of the Glow MNIST experiment (dequantized 28x28x1 pixels, bits/dim).

``CPU``: a small Glow for a 2-core CPU machine (see README, which
also gives the published models' sizes); ``SMOKE``: the test's tiny run.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Config:
    num_levels: int = 2  # 28 -> 14 -> 7: two squeezes fit 28x28
    num_steps: int = 4  # K steps of flow per level
    hidden_channels: int = 48
    log_scale_bound: float = 2.0
    learned_prior: bool = True
    learning_rate: float = 1e-3
    warmup_steps: int = 100  # linear learning-rate warm-up (Glow: 10 epochs)
    batch_size: int = 32
    init_batch_size: int = 512  # ActNorm's data-dependent initialisation batch (Glow: 512)
    max_steps: int = 2_000  # the training budget
    eval_every: int = 50  # steps between validation estimates on `eval_examples` images
    eval_examples: int = 500
    test_examples: int | None = None  # None: the whole test split
    max_train_examples: int | None = None
    num_samples: int = 64
    temperature: float = 0.7  # also draws samples at this temperature (Glow's Fig.)
    seed: int = 0


CPU = Config()
SMOKE = dataclasses.replace(CPU, num_steps=1, hidden_channels=4, batch_size=8,
                            init_batch_size=16, max_steps=4, eval_every=2, eval_examples=8,
                            test_examples=8, max_train_examples=32, num_samples=4,
                            warmup_steps=1)
CONFIGS = {"cpu": CPU, "smoke": SMOKE}

# Published test bits/dim of dequantized MNIST (lower is better), both as tabulated in the
# FFJORD paper (Grathwohl et al. 2019, Table 2); the Glow and Real NVP papers' own tables
# report no MNIST number (see README).
PUBLISHED_BITS_PER_DIM = {
    "Glow (Kingma & Dhariwal 2018; FFJORD Table 2)": 1.05,
    "RealNVP (Dinh et al. 2017; FFJORD Table 2)": 1.06,
}
