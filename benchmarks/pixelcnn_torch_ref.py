"""Time the PyTorch PixelCNN++ of pclucas14/pixel-cnn-pp on this machine (CPU).

Run by ``benchmarks/pixelcnn.py`` in a separate interpreter that has PyTorch (never the
jflows venv); prints one JSON line. The reference code is not part of jflows: get it with

    git clone https://github.com/pclucas14/pixel-cnn-pp /tmp/pixel-cnn-pp

and pass ``--ref /tmp/pixel-cnn-pp``. Two run-time adaptations, nothing else changed: its
loss and sampling helpers call ``.cuda()`` unconditionally, so on a CPU-only machine
``Tensor.cuda`` is the identity for the run; and ``utils.py`` has one Python 2 statement
(``print e`` in ``load_part_of_model``, unused here), rewritten in memory as ``print(e)``
when the module is loaded. Its architecture is fixed at three hierarchies and it is
unconditional, so the comparison uses unconditional grayscale models on both sides.
Sampling is the reference's own scheme: one full network pass per pixel.
"""

import argparse
import json
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ref", required=True, help="checkout of pclucas14/pixel-cnn-pp")
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--num-resnet", type=int, default=5)
    parser.add_argument("--num-filters", type=int, default=128)
    parser.add_argument("--num-logistic-mix", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--sample-batches", default="16,256")
    parser.add_argument("--sample-passes", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    torch.Tensor.cuda = lambda self, *a, **k: self  # CPU run of CUDA-only helper code
    sys.path.insert(0, args.ref)
    utils = types.ModuleType("utils")
    utils.__file__ = str(Path(args.ref) / "utils.py")
    source = Path(utils.__file__).read_text().replace("print e\n", "print(e)\n")
    exec(compile(source, utils.__file__, "exec"), utils.__dict__)
    sys.modules["utils"] = utils
    from model import PixelCNN  # noqa: E402  (the fetched reference code)
    from utils import discretized_mix_logistic_loss_1d, sample_from_discretized_mix_logistic_1d

    model = PixelCNN(nr_resnet=args.num_resnet, nr_filters=args.num_filters,
                     nr_logistic_mix=args.num_logistic_mix, input_channels=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(args.batch, 1, args.size, args.size) * 2 - 1
    model.train(True)

    def train_step():
        optimizer.zero_grad()
        loss = discretized_mix_logistic_loss_1d(x, model(x))
        loss.backward()
        optimizer.step()
        return float(loss)

    train_step()  # warm-up
    start = time.perf_counter()
    for _ in range(args.train_steps):
        train_step()
    train_s = (time.perf_counter() - start) / args.train_steps

    model.train(False)
    sample_pass = {}
    with torch.no_grad():
        for n in [int(b) for b in args.sample_batches.split(",")]:
            data = torch.zeros(n, 1, args.size, args.size)
            times = []
            for p in range(args.sample_passes + 1):  # one pixel step of the reference loop
                start = time.perf_counter()
                out = sample_from_discretized_mix_logistic_1d(model(data, sample=True),
                                                              args.num_logistic_mix)
                data[:, :, 0, p] = out[:, :, 0, p]
                times.append(time.perf_counter() - start)
            sample_pass[n] = float(np.median(times[1:]))
    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "train_step_s": train_s, "train_images_per_s": args.batch / train_s,
        "sample_pass_s": sample_pass,
    }))


if __name__ == "__main__":
    main()
