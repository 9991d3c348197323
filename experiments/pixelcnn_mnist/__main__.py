"""``python -m experiments.pixelcnn_mnist [--config full|cpu|smoke] [--out DIR]
[--data PATH] [--max-steps N] [--only unconditional|conditional]``."""

import argparse
import dataclasses

from experiments.pixelcnn_mnist.config import CONFIGS, DATA_PATH, OUT_DIR
from experiments.pixelcnn_mnist.main import main

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--config", default="full", choices=sorted(CONFIGS))
parser.add_argument("--out", default=OUT_DIR, help="output directory")
parser.add_argument("--data", default=DATA_PATH, help="MNIST .npz or idx folder")
parser.add_argument("--max-steps", type=int, default=None, help="override the config's")
parser.add_argument("--only", choices=["unconditional", "conditional"], default=None)
args = parser.parse_args()
cfg = CONFIGS[args.config]
if args.max_steps is not None:
    cfg = dataclasses.replace(cfg, max_steps=args.max_steps)
variants = ("unconditional", "conditional") if args.only is None else (args.only,)
main(cfg, out_dir=args.out, data_path=args.data, variants=variants)
