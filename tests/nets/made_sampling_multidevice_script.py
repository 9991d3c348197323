"""Run by test_made_sampling.py in a subprocess with 4 fake CPU devices (not collected).

Prints, as JSON, the largest difference between MAF samples (and MADE MoG draws, the same
solver with the mixture step) made on one device by the incremental path and the same
draws split over 4 devices with pmap and with shard_map, by the incremental path and by
the D-pass loop."""

import json

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

import jflows.bijectors as jb
from jflows.distributions.mixture import mixture_step
from jflows.nets import MADE
from jflows.nets.autoregressive import made_conditioner, solve_autoregressive

try:
    from jax import shard_map
except ImportError:  # JAX < 0.7 keeps it in experimental
    from jax.experimental.shard_map import shard_map

made = MADE(6, (12, 12), input_order="random", cond_shape=(2,), seed=1, output_init_scale=1.0)
bijectors = {s: jb.masked_autoregressive(made, sampling=s) for s in ("auto", "passes")}
params, state = bijectors["auto"].init(jax.random.key(0), jnp.zeros((6,)))
u = jax.random.normal(jax.random.key(1), (4, 5, 6))
cond = jax.random.normal(jax.random.key(2), (4, 5, 2))

mog = MADE(6, (12,), params_per_dim=9, input_order="random", cond_shape=(2,), seed=2,
           output_init_scale=1.0)
mog_params = made_conditioner(mog).init(jax.random.key(3), jnp.zeros((6,)))
gumbel = jax.random.gumbel(jax.random.key(4), (4, 5, 6, 3))


def sampler(sampling):
    return lambda v, c: bijectors[sampling].forward(params, state, v, cond=c)[:2]


def mog_sampler(sampling):
    def draw(g, z, c):
        return solve_autoregressive(made_conditioner(mog), mog_params, mixture_step(3), (g, z),
                                    z.shape, c, method=sampling)
    return draw


def diff(a, b):
    return float(np.max(np.abs(np.asarray(a).reshape(-1) - np.asarray(b).reshape(-1))))


one_device = jax.jit(sampler("auto"))(u.reshape(20, 6), cond.reshape(20, 2))
mog_one_device = jax.jit(mog_sampler("auto"))(gumbel.reshape(20, 6, 3), u.reshape(20, 6),
                                              cond.reshape(20, 2))
mesh = Mesh(np.array(jax.devices()), ("data",))
spec = PartitionSpec("data")
result = {"devices": jax.device_count()}
for sampling in bijectors:
    pmapped = jax.pmap(sampler(sampling))(u, cond)
    sharded = jax.jit(shard_map(sampler(sampling), mesh=mesh, in_specs=(spec, spec),
                                out_specs=spec))(u.reshape(20, 6), cond.reshape(20, 2))
    mog_pmapped = jax.pmap(mog_sampler(sampling))(gumbel, u, cond)
    mog_sharded = jax.jit(shard_map(mog_sampler(sampling), mesh=mesh,
                                    in_specs=(spec, spec, spec), out_specs=spec))(
        gumbel.reshape(20, 6, 3), u.reshape(20, 6), cond.reshape(20, 2))
    for name, (x, log_det), (y, log_prob) in (("pmap", pmapped, mog_pmapped),
                                               ("shard_map", sharded, mog_sharded)):
        result[f"{sampling}_{name}_x"] = diff(x, one_device[0])
        result[f"{sampling}_{name}_log_det"] = diff(log_det, one_device[1])
        result[f"{sampling}_{name}_mog_x"] = diff(y, mog_one_device[0])
        result[f"{sampling}_{name}_mog_log_prob"] = diff(log_prob, mog_one_device[1])
print(json.dumps(result))
