"""Run in a subprocess with 4 fake CPU devices by test_multidevice.py (not collected)."""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

import jflows.bijectors as jb
import jflows.distributions as jd

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
x = 2.0 + jax.random.normal(jax.random.key(0), (8 * n, 3))
single = flow(None)
params, state = single.init(jax.random.key(1))
log_prob, new_state, _ = single.log_prob_and_state(params, state, x, train=True)
new_state = new_state["bijector"]
mapped = flow("batch")


def train_pass(x):
    """log_prob and the bijector's new state (the batch-norm statistics)."""
    log_prob, state_out, _ = mapped.log_prob_and_state(params, state, x, train=True)
    return log_prob, state_out["bijector"]


pmapped = jax.pmap(train_pass, axis_name="batch")(x.reshape(n, 8, 3))

mesh = Mesh(np.array(jax.devices()), ("batch",))
sharded = jax.jit(shard_map(
    train_pass,
    mesh=mesh, in_specs=PartitionSpec("batch"), out_specs=(PartitionSpec("batch"), PartitionSpec()),
))(x)

def diff(a, b):
    return float(jnp.max(jnp.abs(jnp.asarray(a) - jnp.asarray(b))))

bn_index = 1
print(json.dumps({
    "devices": n,
    "pmap_log_prob": diff(pmapped[0].reshape(-1), log_prob),
    "pmap_mean": diff(pmapped[1][bn_index].mean[0], new_state[bn_index].mean),
    "pmap_state_same_on_all_devices": diff(pmapped[1][bn_index].var[0],
                                           pmapped[1][bn_index].var[-1]),
    "shard_map_log_prob": diff(sharded[0], log_prob),
    "shard_map_var": diff(sharded[1][bn_index].var, new_state[bn_index].var),
}))
sys.stdout.flush()
