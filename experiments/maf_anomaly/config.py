"""Configuration of the anomaly-scoring experiment (Speech Commands, and MNIST digits)."""

import dataclasses

# The 30 words of Speech Commands v0.01 (the seed scored all of them).
SPEECH_WORDS = (
    "bed", "bird", "cat", "dog", "down", "eight", "five", "four", "go", "happy", "house",
    "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven", "sheila", "six",
    "stop", "three", "tree", "two", "up", "wow", "yes", "zero",
)


@dataclasses.dataclass(frozen=True)
class Config:
    """Train a MAF on ``train_class``; score every class's test examples.

    ``dataset="speech_commands"``: the seed's setup -- 257 FFT magnitudes per clip
    (``features="seed_fft"``), its random 50/50 train/test split per word, 512 hidden units,
    Adam lr 1e-3, trained on "zero"; the features are z-scored with the training class's
    statistics (one affine map for all classes, so it does not change the ranking).
    ``dataset="mnist"``: the same on MNIST digits in the MAF paper's logit space; classes are
    compared by their log-likelihood of the dequantized pixels (a density on one common
    space, ``[0, 256)^784``).
    """

    dataset: str = "mnist"
    train_class: str = "0"  # a digit, or a word for speech_commands
    classes: tuple[str, ...] | None = None  # None: all ten digits / the 30 words
    data_path: str | None = None  # None: download and cache via jflows.data
    data_dir: str | None = None
    speech_version: str = "v0.01"
    num_layers: int = 5
    hidden_sizes: tuple[int, ...] = (512, 512)
    activation: str = "tanh"
    learning_rate: float = 1e-3
    batch_size: int = 100
    weight_decay: float = 1e-6
    max_epochs: int = 30
    patience: int = 10
    seed: int = 0
    out_dir: str = "runs/maf_anomaly"
