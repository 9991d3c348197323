"""``python -m experiments.flow_matching_toy [--toys ...] [--no-miniboone] [--quick]``.

Flow matching (OT-CFM, I-CFM) vs maximum-likelihood FFJORD with the same vector field,
on the 2-D toys and the committed MINIBOONE sample, each with the same CPU-time budget.
"""

import argparse
import dataclasses

from experiments.flow_matching_toy.config import TOYS, Config
from experiments.flow_matching_toy.main import main

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--toys", nargs="*", default=list(TOYS), choices=list(TOYS))
parser.add_argument("--no-miniboone", action="store_true")
parser.add_argument("--miniboone-path", default=Config.miniboone_path,
                    help="an .npz (key x) of MAF MINIBOONE rows; default the committed sample")
parser.add_argument("--toy-budget", type=float, default=Config.toy_budget_s,
                    help="CPU seconds of training per method and toy")
parser.add_argument("--miniboone-budget", type=float, default=Config.miniboone_budget_s)
parser.add_argument("--seed", type=int, default=Config.seed)
parser.add_argument("--out", default=Config.out_dir)
parser.add_argument("--quick", action="store_true",
                    help="smoke run: moons only, 1,024 points, 2 s budgets, small fields")
args = parser.parse_args()
config = dataclasses.replace(
    Config(), toys=tuple(args.toys), miniboone=not args.no_miniboone,
    miniboone_path=args.miniboone_path, toy_budget_s=args.toy_budget,
    miniboone_budget_s=args.miniboone_budget, seed=args.seed, out_dir=args.out)
if args.quick:
    config = dataclasses.replace(
        config, toys=("moons",), num_points=1024, num_test_points=256, toy_budget_s=2.0,
        miniboone_budget_s=2.0, toy_hidden=(8,), miniboone_hidden=(8,), evaluations=2,
        eval_points=128, density_resolution=20)
main(config)
