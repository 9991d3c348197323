"""Vector-field networks: each layer against its formula written out with its params."""

import jax
import jax.numpy as jnp
import numpy as np

from jflows.nets.odenet import ConcatSquashDense, ConcatSquashMLP, ConcatTimeMLP

KEY = jax.random.key(0)


def dense(p, h):
    return h @ p["kernel"] + p.get("bias", 0.0)


def test_concat_time_mlp_is_an_mlp_on_z_t_and_cond():
    net = ConcatTimeMLP(hidden=(5, 4))
    z, cond = jax.random.normal(KEY, (6, 3)), jax.random.normal(jax.random.key(1), (6, 2))
    params = net.init(KEY, 0.0, z, cond)["params"]
    t = 0.7
    # The first layer is one Dense on the concatenation [z, t, cond].
    kernel = jnp.concatenate([params["input"]["kernel"], params["time"]["dense"]["kernel"],
                              params["cond"]["kernel"]], axis=0)
    h = jnp.concatenate([z, jnp.full((6, 1), t), cond], -1) @ kernel + params["input"]["bias"]
    h = jnp.tanh(dense(params["dense_1"], jnp.tanh(h)))
    expected = dense(params["dense_2"], h)
    np.testing.assert_allclose(net.apply({"params": params}, t, z, cond), expected, rtol=1e-5)
    # One cond for the whole batch broadcasts like a per-row copy.
    tiled = net.apply({"params": params}, t, z, jnp.tile(cond[:1], (6, 1)))
    np.testing.assert_allclose(net.apply({"params": params}, t, z, cond[0]), tiled, rtol=1e-6)


def test_concat_squash_dense_gates_and_shifts_by_time():
    layer = ConcatSquashDense(4)
    h = jax.random.normal(KEY, (5, 3))
    params = layer.init(KEY, 0.0, h)["params"]
    t = -0.4
    column = jnp.full((5, 1), t)
    gate, shift = params["gate"]["dense"], params["shift"]["dense"]
    expected = (dense(params["linear"], h) * jax.nn.sigmoid(dense(gate, column))
                + column @ shift["kernel"])
    assert "bias" not in shift
    np.testing.assert_allclose(layer.apply({"params": params}, t, h), expected, rtol=1e-5)


def test_concat_squash_mlp_depends_on_time_and_keeps_the_shape():
    net = ConcatSquashMLP(hidden=(8, 8))
    z = jax.random.normal(KEY, (2, 7, 3))
    variables = net.init(KEY, 0.0, z)
    out0, out1 = net.apply(variables, 0.0, z), net.apply(variables, 1.0, z)
    assert out0.shape == z.shape
    assert float(jnp.max(jnp.abs(out0 - out1))) > 1e-3
