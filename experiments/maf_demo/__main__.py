"""``python -m experiments.maf_demo [--out DIR] [--data-path FILE] [--max-steps N] [--seed S]``.

The main demo (``make demo``): MAF(5) vs a full-covariance Gaussian on the committed
MINIBOONE sample; writes results.json, learning_curve.png and samples.png under --out.
"""

import argparse
import dataclasses

from experiments.maf_demo.config import Config
from experiments.maf_demo.main import main

parser = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--out", default=Config.out_dir, help="output directory")
parser.add_argument("--data-path", default=Config.data_path,
                    help="an .npz with key 'x' holding rows of MAF's MINIBOONE data.npy "
                         "(default: the committed sample)")
parser.add_argument("--max-epochs", type=int, default=Config.max_epochs)
parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
parser.add_argument("--num-samples", type=int, default=Config.num_samples)
parser.add_argument("--seed", type=int, default=Config.seed)
parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
args = parser.parse_args()
main(dataclasses.replace(Config(), out_dir=args.out, data_path=args.data_path,
                         max_epochs=args.max_epochs, max_steps=args.max_steps,
                         num_samples=args.num_samples, seed=args.seed,
                         progress=not args.no_progress))
