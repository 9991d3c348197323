"""``python -m experiments.nsf_tabular [--out DIR] [--data-path FILE] [--models ...]
[--toys ...] [--no-miniboone] [--max-steps N] [--seed S] [--realnvp-activation A]``:
NSF / RealNVP / MAF on MINIBOONE and 2-D toys; writes results.json, results.md and
samples_*.png under --out."""

import argparse
import dataclasses

from experiments.nsf_tabular.config import MODELS, Config
from experiments.nsf_tabular.main import main

parser = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--out", default=Config.out_dir, help="output directory")
parser.add_argument("--data-path", default=Config.data_path,
                    help="an .npz with key 'x' holding rows of MAF's MINIBOONE data.npy "
                         "(default: the committed sample of experiments/maf_demo)")
parser.add_argument("--models", nargs="+", default=list(Config.models), choices=MODELS)
parser.add_argument("--toys", nargs="*", default=list(Config.toys))
parser.add_argument("--no-miniboone", action="store_true", help="the toys only")
parser.add_argument("--max-epochs", type=int, default=Config.max_epochs)
parser.add_argument("--toy-max-epochs", type=int, default=Config.toy_max_epochs)
parser.add_argument("--max-steps", type=int, default=None, help="stop every run after this "
                                                                "many steps")
parser.add_argument("--seed", type=int, default=Config.seed)
parser.add_argument("--realnvp-activation", default=Config.realnvp_activation,
                    choices=("tanh", "relu"))
args = parser.parse_args()
main(dataclasses.replace(Config(), out_dir=args.out, data_path=args.data_path,
                         miniboone=not args.no_miniboone, models=tuple(args.models),
                         toys=tuple(args.toys),
                         max_epochs=args.max_epochs, toy_max_epochs=args.toy_max_epochs,
                         max_steps=args.max_steps, seed=args.seed,
                         realnvp_activation=args.realnvp_activation))
