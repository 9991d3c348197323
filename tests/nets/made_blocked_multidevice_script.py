"""Run by test_made_blocked.py in a subprocess with 8 fake CPU devices (not collected).

Prints, as JSON, the largest differences between a data-parallel training step of a
conditional two-layer MAF with blocked MADEs (the loss and its gradients averaged over 8
devices, by pmap and by shard_map) and the same step on one device with dense MADEs."""

import json

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

import jflows.bijectors as jb
import jflows.distributions as jd
from jflows.nets import MADE

try:
    from jax import shard_map
except ImportError:  # JAX < 0.7 keeps it in experimental
    from jax.experimental.shard_map import shard_map


def flow(evaluation):
    def layer(order):
        return jb.masked_autoregressive(MADE(6, (12, 12), input_order=order, cond_shape=(2,),
                                             evaluation=evaluation, blocked_groups=3,
                                             output_init_scale=0.5))
    return jd.transformed(jd.standard_normal((6,)),
                          jb.chain(layer("random"), layer("reversed")), cond_shape=(2,))


blocked, dense = flow("blocked"), flow("dense")
params, state = dense.init(jax.random.key(0))
x = jax.random.normal(jax.random.key(1), (8 * 5, 6))
cond = jax.random.normal(jax.random.key(2), (8 * 5, 2))


def loss(model):
    def fn(p, v, c):
        return -jnp.mean(model.log_prob_and_state(p, state, v, cond=c, train=True)[0])
    return fn


def pmap_step(v, c):
    """pmap: every device differentiates its own loss; the gradients are then averaged."""
    value, grads = jax.value_and_grad(loss(blocked))(params, v, c)
    return jax.lax.pmean((value, grads), "data")


def shard_map_step(v, c):
    """shard_map: the gradient of the averaged loss (params are replicated, so their
    cotangents are summed over the devices by the transpose of the broadcast)."""
    return jax.value_and_grad(
        lambda p: jax.lax.pmean(loss(blocked)(p, v, c), "data"))(params)


reference = jax.jit(jax.value_and_grad(loss(dense)))(params, x, cond)
pmapped = jax.pmap(pmap_step, axis_name="data")(x.reshape(8, 5, 6), cond.reshape(8, 5, 2))
pmapped = jax.tree_util.tree_map(lambda leaf: leaf[0], pmapped)
mesh = Mesh(np.array(jax.devices()), ("data",))
spec = PartitionSpec("data")
sharded = jax.jit(shard_map(shard_map_step, mesh=mesh, in_specs=(spec, spec),
                            out_specs=PartitionSpec()))(x, cond)


def diff(a, b):
    return max(float(jnp.max(jnp.abs(u - w)) / max(1.0, float(jnp.max(jnp.abs(w)))))
               for u, w in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b),
                               strict=True))


print(json.dumps({"devices": jax.device_count(),
                  "pmap_loss": diff(pmapped[0], reference[0]),
                  "pmap_grads": diff(pmapped[1], reference[1]),
                  "shard_map_loss": diff(sharded[0], reference[0]),
                  "shard_map_grads": diff(sharded[1], reference[1])}))
