"""``python -m experiments.maf_mnist --model {made,maf5,maf10,maf_mog5} [--max-epochs N]
[--resample]``."""

import argparse
import dataclasses

from experiments.maf_mnist.config import MODELS, Config
from experiments.maf_mnist.main import main

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--model", default=Config.model, choices=sorted(MODELS))
parser.add_argument("--data-path", default=Config.data_path,
                    help="MNIST .npz or idx folder ('' to download with jflows.data)")
parser.add_argument("--max-epochs", type=int, default=Config.max_epochs)
parser.add_argument("--max-steps", type=int, default=None)
parser.add_argument("--seed", type=int, default=Config.seed)
parser.add_argument("--sampling", default=Config.sampling, choices=["auto", "passes"])
parser.add_argument("--resample", action="store_true",
                    help="only draw samples from the run's latest checkpoint (both paths)")
parser.add_argument("--out", default=Config.out_dir)
args = parser.parse_args()
main(dataclasses.replace(Config(), model=args.model, data_path=args.data_path or None,
                         max_epochs=args.max_epochs, max_steps=args.max_steps, seed=args.seed,
                         sampling=args.sampling, resample=args.resample, out_dir=args.out))
