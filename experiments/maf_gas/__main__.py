"""``python -m experiments.maf_gas [--source maf|uci] [--data-path FILE] [--max-steps N]``."""

import argparse
import dataclasses

from experiments.maf_gas.config import Config
from experiments.maf_gas.main import main

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--source", default=Config.source, choices=["maf", "uci"])
parser.add_argument("--data-path", default=None, help="local GAS file (pickle or UCI txt)")
parser.add_argument("--data-dir", default=None, help="jflows.data cache directory")
parser.add_argument("--max-steps", type=int, default=None)
parser.add_argument("--max-epochs", type=int, default=Config.max_epochs)
parser.add_argument("--seed", type=int, default=Config.seed)
parser.add_argument("--out", default=Config.out_dir)
args = parser.parse_args()
main(dataclasses.replace(Config(), source=args.source, data_path=args.data_path,
                         data_dir=args.data_dir, max_steps=args.max_steps,
                         max_epochs=args.max_epochs, seed=args.seed, out_dir=args.out))
