"""Configuration of ``experiments.nsf_tabular``: four flows, the committed MINIBOONE sample
and three 2-D toys, a small CPU budget (see README)."""

import dataclasses

from experiments.maf_demo.config import DATA_FILE

MODELS = ("maf", "realnvp", "nsf_autoregressive", "nsf_coupling")


@dataclasses.dataclass(frozen=True)
class Config:
    """Every model: 2 x 32 hidden units per network, Adam lr 1e-3, L2 1e-6, early stopping
    on the validation split (the best epoch kept). MAF(5) as ``maf_demo`` (tanh, batch
    norm); RealNVP(10) (``realnvp_activation``, batch norm, split couplings alternating
    halves); NSF-AR(5)
    (relu, 8 bins on [-bound, bound]); NSF-C(10) (relu, 8 bins)."""

    data_path: str = str(DATA_FILE)  # an .npz with key "x": rows of MAF's MINIBOONE data.npy
    miniboone: bool = True  # False: the toys only
    models: tuple[str, ...] = MODELS
    toys: tuple[str, ...] = ("moons", "8gaussians", "checkerboard")
    hidden_sizes: tuple[int, ...] = (32, 32)
    # tanh as MAF's: with relu, RealNVP's shifts grow linearly in the conditioning half,
    # and on MINIBOONE a few test rows far outside the 989 training rows were sent to
    # |u| ~ 1e3 (test mean -9.3e5 nats; see README).
    realnvp_activation: str = "tanh"
    num_bins: int = 8
    bound: float = 3.0  # MINIBOONE is standardised; the toys are standardised too (see main)
    learning_rate: float = 1e-3
    weight_decay: float = 1e-6
    # MINIBOONE: 989 training rows, batches of 100 (maf_demo's protocol, shorter patience).
    batch_size: int = 100
    max_epochs: int = 150
    patience: int = 20
    # Toys: fresh draws, batches of 250.
    toy_train: int = 5000
    toy_validation: int = 1000
    toy_test: int = 5000
    toy_batch_size: int = 250
    toy_max_epochs: int = 40
    toy_patience: int = 10
    max_steps: int | None = None  # stop every run earlier (smoke tests)
    num_samples: int = 2000
    plot_pairs: tuple[tuple[int, int], ...] = ((2, 15), (32, 28))
    seed: int = 0
    progress: bool = False
    out_dir: str = "runs/nsf_tabular"
