"""Configuration of the main demo: MAF(5) against a full-covariance Gaussian on the
MINIBOONE sample committed in ``experiments/maf_demo/data/`` (see its README)."""

import dataclasses
from pathlib import Path

#: The committed real-data sample: rows 0..1218 of the MAF paper's MINIBOONE ``data.npy``.
DATA_FILE = Path(__file__).resolve().parent / "data" / "miniboone_maf_rows0-1218.npz"
DATA_SHA256 = "b06ad7149d6c102a6320cc13f6b10e04a25ee32846d01377daa2f8071a787ffc"
DATA_SHAPE = (1219, 43)


@dataclasses.dataclass(frozen=True)
class Config:
    """MAF(5): 5 MADE-affine layers of 2 x 32 tanh units, batch norm after each, order
    reversed between layers, standard normal base. Adam lr 1e-3, batch 100, L2 1e-6, early
    stopping after 30 epochs without validation improvement (the best epoch is kept), then
    batch-norm statistics from the whole training split. 2 x 32 rather than the 2 x 100 of
    ``maf_gas``: with 989 training rows the smaller MADEs generalise better (see README)."""

    data_path: str = str(DATA_FILE)  # an .npz with key "x": rows of MAF's MINIBOONE data.npy
    num_layers: int = 5
    hidden_sizes: tuple[int, ...] = (32, 32)
    activation: str = "tanh"
    batch_norm: bool = True
    learning_rate: float = 1e-3
    batch_size: int = 100
    weight_decay: float = 1e-6
    patience: int = 30
    max_epochs: int = 500
    max_steps: int | None = None  # stop earlier (for smoke tests)
    num_samples: int = 2000  # flow (and Gaussian) samples drawn for the plot
    # The four most skewed dimensions of the training split, and four strongly dependent pairs.
    plot_dims: tuple[int, ...] = (2, 15, 39, 22)
    plot_pairs: tuple[tuple[int, int], ...] = ((2, 15), (21, 22), (32, 28), (10, 29))
    progress: bool = True  # tqdm bar of jflows.train.fit
    seed: int = 0
    out_dir: str = "runs/maf_demo"
