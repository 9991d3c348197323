"""``python -m experiments.pixelcnn_quickdraw [--config full|cpu|smoke] [--out DIR]
[--data PATH] [--max-steps N]``."""

import argparse
import dataclasses

from experiments.pixelcnn_quickdraw.config import CONFIGS, DATA_PATH, OUT_DIR
from experiments.pixelcnn_quickdraw.main import main

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--config", default="full", choices=sorted(CONFIGS))
parser.add_argument("--out", default=OUT_DIR, help="output directory")
parser.add_argument("--data", default=DATA_PATH, help=".npz of class -> (N, 784) uint8")
parser.add_argument("--max-steps", type=int, default=None, help="override the config's")
args = parser.parse_args()
cfg = CONFIGS[args.config]
if args.max_steps is not None:
    cfg = dataclasses.replace(cfg, max_steps=args.max_steps)
main(cfg, out_dir=args.out, data_path=args.data)
