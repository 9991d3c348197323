"""``python -m experiments.ffjord_toy [--parts moons toys rnode] [--epochs N] [--adjoint A]
[--quick]``.

moons: the TFP FFJORD tutorial (4-panel figures at the start and end, NLL, s/epoch).
toys: the same flow on 8 gaussians, checkerboard, pinwheel and rings, plus the density grid.
rnode: moons again with RNODE regularisation, compared with the plain run.
"""

import argparse
import dataclasses

from experiments.ffjord_toy.config import OTHER_TOYS, Config
from experiments.ffjord_toy.main import main

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--parts", nargs="+", default=["moons", "toys", "rnode"],
                    choices=["moons", "toys", "rnode"])
parser.add_argument("--toys", nargs="+", default=list(OTHER_TOYS))
parser.add_argument("--epochs", type=int, default=Config.epochs)
parser.add_argument("--seed", type=int, default=Config.seed)
parser.add_argument("--adjoint", default=Config.adjoint, choices=["recursive", "backsolve"],
                    help="diffrax adjoint of the training solves")
parser.add_argument("--out", default=Config.out_dir)
parser.add_argument("--progress", action="store_true", help="show fit's progress bars")
parser.add_argument("--quick", action="store_true",
                    help="smoke run: 2 epochs on 1,024 points")
args = parser.parse_args()
config = dataclasses.replace(Config(), epochs=args.epochs, seed=args.seed, out_dir=args.out,
                             progress=args.progress, adjoint=args.adjoint)
if args.quick:
    config = dataclasses.replace(config, epochs=2, num_points=1024, num_test_points=1024)
main(config, parts=args.parts, toys=tuple(args.toys))
