"""Run in a subprocess with 8 fake CPU devices by test_multidevice.py (not collected).

A batch of 8 rows, one per device, through a flow with batch norm: under ``pmap`` and
``shard_map`` (``axis_name`` bound: ``pmean`` across devices), under a plain ``jit`` of
``NamedSharding`` inputs (``axis_name`` unbound: the collectives are skipped, XLA reduces
the global batch) and under a ``shard_map`` manual over one axis of a 2 x 4 mesh only.
Prints one JSON line: the largest deviation of each from one device's pass over the
whole batch, and what :mod:`jflows.collectives` saw.
"""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import jflows.bijectors as jb
import jflows.distributions as jd
from jflows.bijectors.batch_norm import batch_norm_metrics
from jflows.collectives import axis_is_bound, bound_axis_size

try:
    from jax import shard_map
except ImportError:  # older JAX
    from jax.experimental.shard_map import shard_map


def flow(axis_name):
    return jd.transformed(
        jd.standard_normal((3,)),
        jb.chain(jb.affine_tril_lowrank(rank=1), jb.batch_norm(axis_name=axis_name),
                 jb.reverse(), jb.tanh(), jb.invert(jb.tanh())),
    )


n = jax.device_count()
x = 2.0 + jax.random.normal(jax.random.key(0), (n, 3))  # one row per device
single = flow(None)
params, state = single.init(jax.random.key(1))
log_prob, new_state, _ = single.log_prob_and_state(params, state, x, train=True)
new_state = new_state["bijector"]
bn_index = 1
seen = {}


def pass_over(axis_name):
    """log_prob, the bijector's new state and its batch-norm metrics over ``axis_name``."""
    model = flow(axis_name)

    def train_pass(x):
        seen[str(axis_name)] = (axis_is_bound(axis_name), bound_axis_size(axis_name))
        log_prob, state_out, info = model.log_prob_and_state(params, state, x, train=True)
        return log_prob, state_out["bijector"], batch_norm_metrics(info)

    return train_pass


pmapped = jax.pmap(pass_over("batch"), axis_name="batch")(x.reshape(n, 1, 3))

mesh = Mesh(np.array(jax.devices()), ("batch",))
row = PartitionSpec("batch")
sharded = jax.jit(shard_map(pass_over("batch"), mesh=mesh, in_specs=row,
                            out_specs=(row, PartitionSpec(), PartitionSpec())))(x)
seen_shard_map = seen["batch"]

x_sharded = jax.device_put(x, NamedSharding(mesh, row))
jitted = jax.jit(pass_over("batch"))(x_sharded)
seen_jit = seen["batch"]

grid = Mesh(np.array(jax.devices()).reshape(2, n // 2), ("hosts", "devices"))
partial = jax.jit(shard_map(pass_over(("hosts", "devices")), mesh=grid,
                            in_specs=PartitionSpec("hosts"),
                            out_specs=(PartitionSpec("hosts"), PartitionSpec(), PartitionSpec()),
                            axis_names={"hosts"}))(x)
seen_partial = seen["('hosts', 'devices')"]


def diff(a, b):
    return float(jnp.max(jnp.abs(jnp.asarray(a) - jnp.asarray(b))))


def stats_diff(bijector_state):
    return max(diff(bijector_state[bn_index].mean, new_state[bn_index].mean),
               diff(bijector_state[bn_index].var, new_state[bn_index].var))


print(json.dumps({
    "devices": n,
    "input_shards": len(x_sharded.sharding.device_set),
    "seen": {"shard_map": seen_shard_map, "jit": seen_jit, "partial": seen_partial},
    "low_variance_dims": [int(m["batch_norm_low_variance_dims"].max())
                          for m in (pmapped[2], sharded[2], jitted[2], partial[2])],
    "errors": {
        "pmap_log_prob": diff(pmapped[0].reshape(-1), log_prob),
        "pmap_stats": stats_diff(jax.tree_util.tree_map(lambda a: a[0], pmapped[1])),
        "pmap_state_same_on_all_devices": diff(pmapped[1][bn_index].var[0],
                                               pmapped[1][bn_index].var[-1]),
        "shard_map_log_prob": diff(sharded[0], log_prob),
        "shard_map_stats": stats_diff(sharded[1]),
        "jit_named_sharding_log_prob": diff(jitted[0], log_prob),
        "jit_named_sharding_stats": stats_diff(jitted[1]),
        "partial_shard_map_log_prob": diff(partial[0], log_prob),
        "partial_shard_map_stats": stats_diff(partial[1]),
    },
}))
sys.stdout.flush()
