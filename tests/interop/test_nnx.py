"""Flax NNX modules as jflows conditioners (coupling, MAF) and FFJORD vector fields."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from flax.nnx import bridge

import jflows.bijectors as jb
import jflows.distributions as jd
from jflows.bijectors.coupling import split_coupling
from jflows.interop import nnx as jnnx
from jflows.nets import made_degrees, made_masks
from jflows.ode import exact_trace, ffjord
from jflows.testing import BijectorCase, check_bijector, check_log_det_vs_jacobian
from jflows.train import Checkpoints


class CouplingNet(nnx.Module):
    """``x_A -> theta`` of shape ``(..., d_out, k)``."""

    def __init__(self, d_in, d_out, k, *, rngs):
        self.hidden = nnx.Linear(d_in, 16, rngs=rngs)
        self.out = nnx.Linear(16, d_out * k, rngs=rngs)
        self.shape = (d_out, k)

    def __call__(self, x):
        return self.out(jnp.tanh(self.hidden(x))).reshape(x.shape[:-1] + self.shape)


class NNXMade(nnx.Module):
    """A one-hidden-layer MADE of masked ``nnx.Linear`` layers: ``x, cond -> theta``
    (``(..., d, 2)``: shift and log-scale per dimension)."""

    def __init__(self, d, hidden, cond_size, *, rngs):
        self.hidden = nnx.Linear(d, hidden, rngs=rngs)
        self.cond = nnx.Linear(cond_size, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, 2 * d, rngs=rngs)
        self.sizes = (d, hidden)

    def __call__(self, x, cond):
        d, hidden = self.sizes
        mask_hidden, mask_out = made_masks(made_degrees(d, (hidden,)))
        mask_out = jnp.repeat(mask_out, 2, axis=1)  # (H, 2 d): columns d-major
        h = jnp.tanh(x @ (self.hidden.kernel[...] * mask_hidden) + self.hidden.bias[...]
                     + self.cond(cond))
        theta = h @ (self.out.kernel[...] * mask_out) + self.out.bias[...]
        return 0.1 * theta.reshape(x.shape[:-1] + (d, 2))


def test_nnx_coupling_conditioner_passes_the_shared_checks():
    conditioner = jnnx.conditioner(lambda rngs: CouplingNet(2, 2, 2, rngs=rngs),
                                   params_per_dim=2)
    check_bijector(BijectorCase("nnx_coupling", lambda: split_coupling(2, conditioner), (4,),
                                higher_rank_bases=False, checks=(
                                    "round_trip", "log_det_vs_jacobian", "batch_matches_vmap",
                                    "eval_shape_init", "transformed")))


def test_nnx_made_as_masked_autoregressive_conditioner():
    net = jnnx.conditioner(lambda rngs: NNXMade(4, 16, 2, rngs=rngs), params_per_dim=2,
                           cond_shape=(2,))

    def make():
        return jb.masked_autoregressive(net.apply, init=net.init, cond_shape=net.cond_shape)

    # log-det vs the dense Jacobian: fails unless the NNX network is autoregressive.
    check_bijector(BijectorCase("nnx_maf", make, (4,), cond_shape=(2,), checks=(
        "round_trip", "inverse_log_det", "log_det_vs_jacobian", "grad_finite")))


@pytest.mark.slow
def test_nnx_vector_field_through_bridge_in_ffjord():
    class Field(nnx.Module):
        def __init__(self, d, *, rngs):
            self.hidden = nnx.Linear(d + 1, 8, rngs=rngs)
            self.out = nnx.Linear(8, d, rngs=rngs)

        def __call__(self, t, z):
            tz = jnp.concatenate([z, jnp.broadcast_to(t, z.shape[:-1] + (1,))], -1)
            return self.out(jnp.tanh(self.hidden(tz)))

    grid = dict(solver=diffrax.Tsit5(), stepsize_controller=diffrax.ConstantStepSize(),
                dt0=0.25, trace=exact_trace())
    check_log_det_vs_jacobian(BijectorCase(
        "nnx_ffjord", lambda: ffjord(bridge.ToLinen(Field, args=(3,)), **grid), (3,)),
        num_events=1)


def test_nnx_params_checkpoint_round_trip(tmp_path):
    conditioner = jnnx.conditioner(lambda rngs: CouplingNet(2, 2, 2, rngs=rngs),
                                   params_per_dim=2)
    flow = jd.transformed(jd.standard_normal((4,)), split_coupling(2, conditioner))
    params, state = flow.init(jax.random.key(0))
    params = jax.tree_util.tree_map(lambda a: a + 0.1, params)
    checkpoints = Checkpoints(tmp_path, async_save=False)
    checkpoints.save(1, params, {})
    template = jax.tree_util.tree_map(np.zeros_like, params)
    restored, _ = checkpoints.restore_latest(template)
    checkpoints.close()
    x = jax.random.normal(jax.random.key(1), (3, 4))
    np.testing.assert_array_equal(flow.log_prob(restored, state, x),
                                  flow.log_prob(params, state, x))


def test_refuses_modules_with_non_param_state():
    class Normed(nnx.Module):
        def __init__(self, *, rngs):
            self.norm = nnx.BatchNorm(2, rngs=rngs)

        def __call__(self, x):
            return self.norm(x)

    with pytest.raises(ValueError, match="BatchStat"):
        jnnx.pure(lambda rngs: Normed(rngs=rngs))
    with pytest.raises(TypeError, match="nnx.Module"):
        jnnx.pure(lambda rngs: jnp.zeros(3))
