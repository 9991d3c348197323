"""MAF sampling: jflows' incremental MADE evaluation vs its D-pass loop vs FlowJAX.

    python -m benchmarks.maf_sampling                  # the three sizes of issue 8
    python -m benchmarks.maf_sampling --sizes 64:5:512x2 --repeats 3

Sizes are ``D:layers:hidden`` with hidden ``WIDTHxDEPTH``. Defaults: the MAF of the
benchmarks (D = 8, 10 layers, 2 x 100), a mid-size one (D = 64, 5 layers, 2 x 512) and the
MAF paper's MNIST model (D = 784, 5 layers, 1 x 1024). Every model: tanh, standard normal
base, no batch norm. Per size and library it times (jitted, float32, best of
``--repeats`` interleaved rounds):

* ``sample``: drawing ``N`` samples (samples/s);
* ``density``: ``log_prob`` of ``N`` points (points/s), the one-pass reference the
  sampling time is compared with (``sample / density`` time ratio; the target is <= 3).

Libraries: ``jflows`` (``jflows.flows.maf(D, layers, hidden, batch_norm=False)``: the
incremental evaluation, the default), ``jflows-passes`` (the same model with
``sampling="passes"``: ``D`` network passes per layer) and ``flowjax``
(``masked_autoregressive_flow``, its defaults; it samples with a ``D``-step loop of full
network passes).
"""

from __future__ import annotations

import argparse

import equinox as eqx
import jax
import jax.numpy as jnp
import paramax
from flowjax.distributions import Normal
from flowjax.flows import masked_autoregressive_flow

import jflows.flows as jf
from benchmarks.timing import Timed, machine_description, time_round_robin
from jflows.nets import MADE
from jflows.nets.made_sampling import padding_factor

DEFAULT_SIZES = ("8:10:100x2", "64:5:512x2", "784:5:1024x1")
DEFAULT_SAMPLES = {8: 1000, 64: 1000, 784: 100}


def parse_size(text: str) -> tuple[int, int, tuple[int, ...]]:
    dim, layers, hidden = text.split(":")
    width, depth = hidden.split("x")
    return int(dim), int(layers), (int(width),) * int(depth)


def jflows_model(dim, layers, hidden, sampling):
    flow = jf.maf(dim, layers, hidden, batch_norm=False, sampling=sampling)
    params, state = flow.init(jax.random.key(0))
    return ((lambda p, x: flow.log_prob(p, state, x)),
            (lambda p, key, n: flow.sample(p, state, key, (n,))), params)


def flowjax_model(dim, layers, hidden):
    flow = masked_autoregressive_flow(
        jax.random.key(0), base_dist=Normal(jnp.zeros(dim)), flow_layers=layers,
        nn_width=hidden[0], nn_depth=len(hidden), nn_activation=jnp.tanh)
    params, static = eqx.partition(
        flow, eqx.is_inexact_array, is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable))

    def model(p):
        return paramax.unwrap(eqx.combine(p, static))

    return ((lambda p, x: model(p).log_prob(x)),
            (lambda p, key, n: model(p).sample(key, (n,))), params)


MODELS = {
    "jflows": lambda *size: jflows_model(*size, sampling="auto"),
    "jflows-passes": lambda *size: jflows_model(*size, sampling="passes"),
    "flowjax": flowjax_model,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--samples", type=int, default=None,
                        help="N for every size (default: 1000, or 100 at D = 784)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--libraries", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args(argv)
    print(f"# MAF sampling benchmark; {machine_description()}")
    print(f"# best of {args.repeats} interleaved rounds; tanh MADEs, no batch norm")
    for text in args.sizes:
        dim, layers, hidden = parse_size(text)
        n = args.samples or DEFAULT_SAMPLES.get(dim, 1000)
        key = jax.random.key(1)
        x = jax.random.normal(key, (n, dim))
        timers = {}
        for name in args.libraries:
            log_prob, sample, params = MODELS[name](dim, layers, hidden)
            density = jax.jit(log_prob)
            sampler = jax.jit(sample, static_argnums=2)
            timers[name] = {
                "density": Timed(name, lambda d=density, p=params, x=x: d(p, x), n),
                "sample": Timed(name, lambda s=sampler, p=params, k=key, n=n: s(p, k, n), n),
            }
        time_round_robin([t for per in timers.values() for t in per.values()], args.repeats)
        factor = padding_factor(MADE(dim, hidden))
        print(f"\n## D = {dim}, {layers} layers, hidden {hidden}, N = {n} "
              f"(incremental padding factor {factor:.2f})")
        print("| library | sample samples/s | density points/s | sample time / density time "
              "| compile s (sample) |")
        print("|---|---|---|---|---|")
        for name, per in timers.items():
            ratio = per["density"].rate / per["sample"].rate
            print(f"| {name} | {per['sample'].rate:,.1f} | {per['density'].rate:,.0f} | "
                  f"{ratio:.2f} | {per['sample'].compile_s:.1f} |")
        if "jflows" in timers:
            fast = timers["jflows"]["sample"].rate
            others = ", ".join(f"{fast / timers[o]['sample'].rate:.1f}x {o}"
                               for o in timers if o != "jflows")
            print(f"\njflows incremental sampling: {others}")


if __name__ == "__main__":
    main()
