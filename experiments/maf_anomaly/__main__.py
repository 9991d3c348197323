"""``python -m experiments.maf_anomaly [--dataset mnist|speech_commands] [--train-class C]``."""

import argparse
import dataclasses

from experiments.maf_anomaly.config import Config
from experiments.maf_anomaly.main import main

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--dataset", default=Config.dataset, choices=["mnist", "speech_commands"])
parser.add_argument("--train-class", default=None, help="digit or word (default 0 / zero)")
parser.add_argument("--data-path", default=None,
                    help="MNIST .npz, or an extracted Speech Commands folder")
parser.add_argument("--data-dir", default=None, help="jflows.data cache directory")
parser.add_argument("--max-epochs", type=int, default=Config.max_epochs)
parser.add_argument("--seed", type=int, default=Config.seed)
parser.add_argument("--out", default=Config.out_dir)
args = parser.parse_args()
speech = args.dataset == "speech_commands"
config = dataclasses.replace(
    Config(), dataset=args.dataset,
    train_class=args.train_class or ("zero" if speech else "0"),
    data_path=args.data_path if (args.data_path or speech) else Config.data_path,
    data_dir=args.data_dir, max_epochs=args.max_epochs, seed=args.seed, out_dir=args.out)
main(config)
