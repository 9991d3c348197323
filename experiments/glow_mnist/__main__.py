"""``python -m experiments.glow_mnist [--config cpu|smoke] [--data-path FILE] [--out DIR]
[--max-minutes M] [--max-steps N]``."""

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
parser.add_argument("--max-minutes", type=float, default=None, help="override the config's")
parser.add_argument("--max-steps", type=int, default=None, help="override the config's")
args = parser.parse_args()
cfg = CONFIGS[args.config]
overrides = {k: v for k, v in (("max_minutes", args.max_minutes), ("max_steps", args.max_steps))
             if v is not None}
main(dataclasses.replace(cfg, **overrides), out_dir=args.out, data_path=args.data_path,
     data_dir=args.data_dir)
