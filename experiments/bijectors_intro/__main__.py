"""``python -m experiments.bijectors_intro [--out DIR] [--steps N] [--seed S]``."""

import argparse
import dataclasses

from experiments.bijectors_intro.config import Config
from experiments.bijectors_intro.main import main

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--out", default=Config.out_dir, help="output directory")
parser.add_argument("--steps", type=int, default=Config.num_steps, help="Adam steps")
parser.add_argument("--seed", type=int, default=Config.seed)
args = parser.parse_args()
main(dataclasses.replace(Config(), out_dir=args.out, num_steps=args.steps, seed=args.seed))
