"""``python -m experiments.glow_mnist [--config cpu|smoke] [--data-path FILE] [--out DIR]
[--max-steps N]``."""

import argparse
import dataclasses

from experiments.glow_mnist.config import CONFIGS
from experiments.glow_mnist.main import main

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--config", default="cpu", choices=sorted(CONFIGS))
parser.add_argument("--data-path", default=None,
                    help="MNIST .npz or idx folder (default: jflows.data's download cache)")
parser.add_argument("--data-dir", default=None, help="jflows.data cache directory")
parser.add_argument("--out", default="runs/glow_mnist", help="output directory")
parser.add_argument("--max-steps", type=int, default=None, help="override the config's")
args = parser.parse_args()
cfg = CONFIGS[args.config]
overrides = {} if args.max_steps is None else {"max_steps": args.max_steps}
main(dataclasses.replace(cfg, **overrides), out_dir=args.out, data_path=args.data_path,
     data_dir=args.data_dir)
