"""MAF speed, side by side: jflows vs FlowJAX vs TFP-JAX with the same architecture.

    python -m benchmarks.maf                       # D = 8 and D = 64, 10 layers, 2 x 100 tanh
    python -m benchmarks.maf --dims 8 --repeats 3  # quicker

Measured per library (all under ``jax.jit``, float32, CPU unless JAX sees an accelerator):

* density: ``log_prob`` of ``--density-batch`` points (points/s);
* training: one Adam step (lr 1e-4) on the mean negative log-likelihood of a batch of 100
  (steps/s);
* sampling: ``--sample-batch`` samples (samples/s).

The models: 10 MADE-affine layers with 2 hidden layers of 100 tanh units and a standard
normal base, no batch norm (neither peer has one; jflows with batch norm is an extra row).

* jflows: ``jflows.flows.maf(D, 10, (100, 100), batch_norm=False)`` (the autoregressive
  order alternates between layers).
* FlowJAX: ``masked_autoregressive_flow(base_dist=Normal(zeros(D)), flow_layers=10,
  nn_width=100, nn_depth=2, nn_activation=tanh)`` (its default: random permutations
  between layers, ``invert=True`` = one-pass density).
* TFP-JAX: ``tfb.MaskedAutoregressiveFlow`` per layer, chained in a
  ``tfd.TransformedDistribution`` over a standard normal. TFP's own
  ``AutoregressiveNetwork`` does not run on the JAX substrate (it is Keras-based), so its
  ``shift_and_log_scale_fn`` is jflows' MADE with the same alternating orders: the TFP
  row measures TFP's bijector plumbing around the same network.

``--libraries jflows ablation:unrolled ablation:flip ...`` (each also ``+batchnorm``)
measures jflows' layout choices against the plain alternatives (see ``unrolled_maf``).

All timed calls are interleaved round-robin over ``--repeats`` rounds and the fastest
round is kept, which makes the ratios robust to other load on a shared machine.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
import paramax
import tensorflow_probability.substrates.jax as tfp
from flowjax.distributions import Normal
from flowjax.flows import masked_autoregressive_flow

import jflows.bijectors as jb
import jflows.distributions as jd
import jflows.flows as jf
from benchmarks.timing import Timed, machine_description, time_round_robin
from jflows.flows.maf import layer_input_order
from jflows.nets import MADE

tfb, tfd = tfp.bijectors, tfp.distributions
LEARNING_RATE = 1e-4


def adam_loop(loss: Callable, params, batch, steps: int) -> Callable[[], object]:
    """``steps`` jitted Adam steps on ``loss(params, batch)`` (params and state carried)."""
    optimizer = optax.adam(LEARNING_RATE)

    @jax.jit
    def step(params, opt_state):
        value, grads = jax.value_and_grad(loss)(params, batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    carry = {"params": params, "opt_state": optimizer.init(params)}

    def run():
        for _ in range(steps):
            carry["params"], carry["opt_state"], value = step(carry["params"],
                                                              carry["opt_state"])
        return value

    return run


# --------------------------------------------------------------------------------------
# The three libraries' models: each returns (log_prob(params, x), sample(params, key, n), params).
# --------------------------------------------------------------------------------------


def unrolled_maf(dim, layers, hidden, batch_norm, flip):
    """The same MAF without jflows' two layout choices (for ``--libraries ablation:*``):
    the layers unrolled instead of scanned in pairs and, with ``flip``, every MADE in the
    natural order with the data reversed (``jb.reverse``) between layers instead of
    alternating MADE orders."""
    density_order = []
    for i in range(layers):
        order = "natural" if flip else layer_input_order("natural", i)
        density_order.append(jb.masked_autoregressive(MADE(dim, hidden, input_order=order)))
        if batch_norm:
            density_order.append(jb.batch_norm())
        if flip and i < layers - 1:
            density_order.append(jb.reverse())
    return jd.transformed(jd.standard_normal((dim,)), jb.chain(*reversed(density_order)))


def jflows_model(dim, layers, hidden, batch_norm=False, ablation=None):
    if ablation is None:
        flow = jf.maf(dim, layers, hidden, batch_norm=batch_norm)
    else:
        flow = unrolled_maf(dim, layers, hidden, batch_norm, flip=ablation == "flip")
    params, state = flow.init(jax.random.key(0))

    def log_prob(p, x):
        return flow.log_prob(p, state, x)

    def train_log_prob(p, x):
        return flow.log_prob_and_state(p, state, x, train=True)[0]

    def sample(p, key, n):
        return flow.sample(p, state, key, (n,))

    return log_prob, train_log_prob, sample, params


def flowjax_model(dim, layers, hidden):
    flow = masked_autoregressive_flow(
        jax.random.key(0), base_dist=Normal(jnp.zeros(dim)), flow_layers=layers,
        nn_width=hidden[0], nn_depth=len(hidden), nn_activation=jnp.tanh,
    )
    params, static = eqx.partition(
        flow, eqx.is_inexact_array, is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable)
    )

    def model(p):
        return paramax.unwrap(eqx.combine(p, static))

    def log_prob(p, x):
        return model(p).log_prob(x)

    def sample(p, key, n):
        return model(p).sample(key, (n,))

    return log_prob, log_prob, sample, params


def tfp_model(dim, layers, hidden):
    mades = [MADE(dim, hidden, input_order=layer_input_order("natural", i))
             for i in range(layers)]
    params = [m.init(jax.random.key(i), jnp.zeros((dim,)))["params"]
              for i, m in enumerate(mades)]

    def distribution(p):
        def shift_and_log_scale(made, made_params):
            def fn(y):
                out = made.apply({"params": made_params}, y)
                return out[..., 0], out[..., 1]
            return fn

        bijectors = [tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=shift_and_log_scale(m, q))
                     for m, q in zip(mades, p, strict=True)]
        # TFP's Chain runs its list last-first in the sampling direction: layer 0 (next to
        # the data) is first in the list.
        return tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0.0, 1.0), dim),
                                           tfb.Chain(bijectors))

    def log_prob(p, x):
        return distribution(p).log_prob(x)

    def sample(p, key, n):
        return distribution(p).sample(n, seed=key)

    return log_prob, log_prob, sample, params


MODELS = {
    "jflows": jflows_model,
    "jflows+batchnorm": lambda *args: jflows_model(*args, batch_norm=True),
    "flowjax": flowjax_model,
    "tfp": tfp_model,
}
PEERS = ("flowjax", "tfp")
ABLATIONS = {
    f"ablation:{kind}{'+batchnorm' if bn else ''}":
        (lambda *args, kind=kind, bn=bn: jflows_model(*args, batch_norm=bn, ablation=kind))
    for kind in ("unrolled", "flip") for bn in (False, True)
}


def build_timers(name, dim, layers, hidden, args):
    log_prob, train_log_prob, sample, params = {**MODELS, **ABLATIONS}[name](dim, layers,
                                                                             hidden)
    return flow_timers(name, log_prob, sample, params, dim, args, train_log_prob)


def flow_timers(name, log_prob, sample, params, dim, args, train_log_prob=None):
    """Density (``args.density_batch`` points), training (``args.train_steps`` Adam steps
    on the mean NLL of ``args.train_batch`` points; ``train_log_prob`` defaults to
    ``log_prob``) and sampling (``args.sample_batch``) timers of one model."""
    train_log_prob = log_prob if train_log_prob is None else train_log_prob
    key = jax.random.key(1)
    x_density = jax.random.normal(key, (args.density_batch, dim))
    x_train = jax.random.normal(jax.random.fold_in(key, 1), (args.train_batch, dim))
    density = jax.jit(log_prob)
    sampler = jax.jit(sample, static_argnums=2)
    loss = lambda p, x: -jnp.mean(train_log_prob(p, x))  # noqa: E731
    return {
        "density": Timed(name, lambda: density(params, x_density), args.density_batch),
        "train": Timed(name, adam_loop(loss, params, x_train, args.train_steps), 1,
                       args.train_steps),
        "sample": Timed(name, lambda: sampler(params, key, args.sample_batch),
                        args.sample_batch),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--hidden", type=int, nargs="+", default=[100, 100])
    parser.add_argument("--density-batch", type=int, default=10_000)
    parser.add_argument("--train-batch", type=int, default=100)
    parser.add_argument("--train-steps", type=int, default=20, help="steps per timed call")
    parser.add_argument("--sample-batch", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--libraries", nargs="+", default=list(MODELS),
                        choices=[*MODELS, *ABLATIONS])
    args = parser.parse_args(argv)
    hidden = tuple(args.hidden)
    print(f"# MAF benchmark: {args.layers} layers, hidden {hidden} tanh; {machine_description()}")
    print(f"# density batch {args.density_batch}, train batch {args.train_batch}, "
          f"sample batch {args.sample_batch}; best of {args.repeats} interleaved rounds")
    for dim in args.dims:
        timers = {name: build_timers(name, dim, args.layers, hidden, args)
                  for name in args.libraries}
        time_round_robin([t for per_lib in timers.values() for t in per_lib.values()],
                         args.repeats)
        units = {"density": "points/s", "train": "steps/s", "sample": "samples/s"}
        print(f"\n## D = {dim}")
        print("| library | density points/s | train steps/s | sample samples/s "
              "| compile s (density/train/sample) |")
        print("|---|---|---|---|---|")
        for name, per_lib in timers.items():
            rates = " | ".join(f"{per_lib[m].rate:,.0f}" for m in units)
            compiles = "/".join(f"{per_lib[m].compile_s:.1f}" for m in units)
            print(f"| {name} | {rates} | {compiles} |")
        peers = [p for p in PEERS if p in timers]
        if "jflows" in timers and peers:
            ratios = {metric: timers["jflows"][metric].rate
                      / max(timers[p][metric].rate for p in peers) for metric in units}
            print("\njflows / fastest peer: "
                  + ", ".join(f"{metric} {ratio:.2f}x" for metric, ratio in ratios.items()))


if __name__ == "__main__":
    main()
