"""Coupling and spline flows, side by side: jflows vs FlowJAX vs distrax, same sizes.

    python -m benchmarks.coupling_spline                  # D = 8 and 64
    python -m benchmarks.coupling_spline --dims 8 --repeats 3

Three families, each library's model with the same layers, networks (2 x ``--hidden``
relu) and base (standard normal), float32, under ``jax.jit``:

* RealNVP (affine coupling, ``--coupling-layers``): jflows ``realnvp(D, L, (H, H))``
  (split couplings alternating halves, log-scale ``3 tanh(raw / 3)``); FlowJAX
  ``coupling_flow(transformer=Affine())`` (random permutations between layers); distrax
  ``MaskedCoupling`` with ``ScalarAffine`` (the same bounded log-scale), alternating half
  masks, whose conditioner is **the same network with the same params**
  as jflows' (it reads the kept half of the masked input), so the log-densities are
  checked equal before timing; distrax's masked layout then applies the transformer to
  all ``D`` elements, jflows' split layout to the ``D/2`` transformed ones.
* NSF-coupling: the same with a rational-quadratic spline of ``--bins`` bins on
  ``[-3, 3]`` (FlowJAX: ``RationalQuadraticSpline(knots=bins - 1, interval=3)``, the same
  number of bins; distrax: ``RationalQuadraticSpline(boundary_slopes='identity')``).
* NSF-autoregressive (``--autoregressive-layers`` MADE-spline layers): jflows
  ``nsf_autoregressive`` (incremental MADE sampling); FlowJAX
  ``masked_autoregressive_flow(transformer=RationalQuadraticSpline(...))``; distrax has no
  autoregressive flow.

Measured: density (``log_prob`` of ``--density-batch`` points, points/s), training (an Adam
step on the mean NLL of a batch of ``--train-batch``, steps/s), sampling (``--sample-batch``
samples, samples/s). All timed calls are interleaved round-robin over ``--repeats`` rounds
and the fastest round is kept (robust to load on a shared machine).
"""

from __future__ import annotations

import argparse

import distrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import paramax
from flowjax.bijections import Affine, RationalQuadraticSpline
from flowjax.distributions import Normal
from flowjax.flows import coupling_flow, masked_autoregressive_flow

from benchmarks.maf import flow_timers
from benchmarks.timing import machine_description, time_round_robin
from jflows.bijectors.coupling import MLPConditioner
from jflows.flows.nsf import nsf_autoregressive, nsf_coupling
from jflows.flows.realnvp import realnvp
from jflows.testing import perturbed

BOUND = 3.0
REALNVP_BOUND = 3.0  # realnvp's default log_scale_bound: log-scale = 3 tanh(raw / 3)


def jflows_model(family, dim, args):
    hidden = (args.hidden, args.hidden)
    spline = dict(num_bins=args.bins, bound=BOUND)
    flow = {"realnvp": lambda: realnvp(dim, args.coupling_layers, hidden,
                                       log_scale_bound=REALNVP_BOUND),
            "nsf_coupling": lambda: nsf_coupling(dim, args.coupling_layers, hidden, **spline),
            "nsf_autoregressive": lambda: nsf_autoregressive(dim, args.autoregressive_layers,
                                                             hidden, **spline)}[family]()
    params, state = flow.init(jax.random.key(0))
    params = perturbed(params, jax.random.key(3), 0.05)
    return (lambda p, x: flow.log_prob(p, state, x),
            lambda p, key, n: flow.sample(p, state, key, (n,)), params)


def flowjax_model(family, dim, args):
    transformer = (Affine() if family == "realnvp" else
                   RationalQuadraticSpline(knots=args.bins - 1, interval=BOUND))
    build = masked_autoregressive_flow if family == "nsf_autoregressive" else coupling_flow
    layers = (args.autoregressive_layers if family == "nsf_autoregressive"
              else args.coupling_layers)
    flow = build(jax.random.key(0), base_dist=Normal(jnp.zeros(dim)), transformer=transformer,
                 flow_layers=layers, nn_width=args.hidden, nn_depth=2,
                 nn_activation=jax.nn.relu)
    params, static = eqx.partition(
        flow, eqx.is_inexact_array, is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable))

    def model(p):
        return paramax.unwrap(eqx.combine(p, static))

    return (lambda p, x: model(p).log_prob(x), lambda p, key, n: model(p).sample(key, (n,)),
            params)


def distrax_model(family, dim, args):
    """distrax's MaskedCoupling stack with jflows' coupling networks and params (see the
    module docstring); layer 0 is next to the data, as jflows'."""
    if family == "nsf_autoregressive":
        return None
    k = 2 if family == "realnvp" else 3 * args.bins - 1
    cut, hidden = dim // 2, (args.hidden, args.hidden)
    jflows_params = jflows_model(family, dim, args)[2]["bijector"]["pairs"]

    def layer_params(index):
        half = jflows_params["odd" if index % 2 else "even"]
        return jax.tree_util.tree_map(lambda a: a[index // 2], half)["coupling"]

    def inner(theta):
        if family == "realnvp":
            return distrax.ScalarAffine(
                shift=theta[..., 0],
                log_scale=REALNVP_BOUND * jnp.tanh(theta[..., 1] / REALNVP_BOUND))
        zeros = jnp.zeros(theta.shape[:-1] + (1,), theta.dtype)
        raw = jnp.concatenate([theta[..., :2 * args.bins], zeros, theta[..., 2 * args.bins:],
                               zeros], -1)
        return distrax.RationalQuadraticSpline(raw, -BOUND, BOUND, boundary_slopes="identity",
                                               min_bin_size=2 * BOUND * 1e-3,
                                               min_knot_slope=1e-3)

    def conditioner(net, p, swap):
        def fn(masked_x):
            kept = masked_x[..., cut:] if swap else masked_x[..., :cut]
            theta = net.apply({"params": p}, kept)
            pad = jnp.zeros(theta.shape[:-2] + (dim - theta.shape[-2], k), theta.dtype)
            return jnp.concatenate([theta, pad] if swap else [pad, theta], axis=-2)
        return fn

    def distribution(params):
        layers = []
        for index in range(args.coupling_layers):
            swap = index % 2 == 1
            mask = (np.arange(dim) >= cut) if swap else (np.arange(dim) < cut)
            net = MLPConditioner(cut if swap else dim - cut, k, hidden)
            layers.append(distrax.MaskedCoupling(mask, conditioner(net, params[index], swap),
                                                 inner))
        # distrax's Chain applies its list last-first in the sampling direction.
        return distrax.Transformed(distrax.MultivariateNormalDiag(jnp.zeros(dim)),
                                   distrax.Chain(layers))

    params = [layer_params(i) for i in range(args.coupling_layers)]
    return (lambda p, x: distribution(p).log_prob(x),
            lambda p, key, n: distribution(p).sample(seed=key, sample_shape=(n,)), params)


LIBRARIES = {"jflows": jflows_model, "flowjax": flowjax_model, "distrax": distrax_model}
FAMILIES = ("realnvp", "nsf_coupling", "nsf_autoregressive")


def check_same_density(models, dim):
    """distrax is built on jflows' params: their log-densities must agree; every model's
    must be finite."""
    x = jax.random.normal(jax.random.key(2), (64, dim))
    values = {name: np.asarray(jax.jit(m[0])(m[2], x)) for name, m in models.items()}
    for name, value in values.items():
        if not np.all(np.isfinite(value)):
            raise AssertionError(f"{name}: non-finite log_prob")
    if "distrax" in values and "jflows" in values:
        np.testing.assert_allclose(values["distrax"], values["jflows"], rtol=1e-4, atol=1e-3)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--coupling-layers", type=int, default=8)
    parser.add_argument("--autoregressive-layers", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--bins", type=int, default=8)
    parser.add_argument("--density-batch", type=int, default=10_000)
    parser.add_argument("--train-batch", type=int, default=100)
    parser.add_argument("--train-steps", type=int, default=10, help="steps per timed call")
    parser.add_argument("--sample-batch", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"# coupling / spline benchmark: hidden 2 x {args.hidden} relu, {args.bins} bins; "
          f"{machine_description()}")
    print(f"# density batch {args.density_batch}, train batch {args.train_batch}, sample "
          f"batch {args.sample_batch}; best of {args.repeats} interleaved rounds")
    units = ("density", "train", "sample")
    for dim in args.dims:
        for family in args.families:
            models = {name: fn(family, dim, args) for name, fn in LIBRARIES.items()}
            models = {name: m for name, m in models.items() if m is not None}
            check_same_density(models, dim)
            timers = {name: flow_timers(name, *m, dim, args) for name, m in models.items()}
            time_round_robin([t for per in timers.values() for t in per.values()],
                             args.repeats)
            print(f"\n## {family}, D = {dim}")
            print("| library | density points/s | train steps/s | sample samples/s "
                  "| compile s (density/train/sample) |")
            print("|---|---|---|---|---|")
            for name, per in timers.items():
                rates = " | ".join(f"{per[m].rate:,.0f}" for m in units)
                compiles = "/".join(f"{per[m].compile_s:.1f}" for m in units)
                print(f"| {name} | {rates} | {compiles} |")
            for peer in (p for p in timers if p != "jflows"):
                print(f"\njflows / {peer}: " + ", ".join(
                    f"{m} {timers['jflows'][m].rate / timers[peer][m].rate:.2f}x"
                    for m in units))


if __name__ == "__main__":
    main()
