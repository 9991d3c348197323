"""PixelCNN++ network: causality (exact zeros in the Jacobian), no blind spot, conditioning,
weight-norm data-dependent init, dropout, errors."""

import flax.errors
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jflows.nets.pixelcnnpp import PixelCNNNetwork, WeightNormConv

H, W, C = 7, 6, 3  # odd, non-square: exercises the ceil(n/2) down- and cropped upsampling


def init_key(seed):
    """An 'rbg' key: XLA compiles threefry for every weight tensor slowly on CPU."""
    return jax.random.wrap_key_data(jax.random.bits(jax.random.key(seed), (4,), jnp.uint32),
                                    impl="rbg")


def jitted(net):
    """``(init, apply)`` compiled once each: eager Flax calls dispatch op by op (slow here)."""
    return jax.jit(net.init), jax.jit(net.apply, static_argnames=("train", "data_init", "mutable"))


def perturbed(variables, key, scale=0.3):
    """Random params everywhere (weight-norm scales and biases too), so no path is zero."""
    leaves, tree = jax.tree.flatten(variables)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(
        tree, [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys, strict=True)]
    )


def pixel_dependence(net, variables, image, cond=None):
    """``D[i, j, k, l] = sum |d out[i, j, :] / d image[k, l, :]|`` via forward-mode Jacobian."""
    jac = jax.jit(jax.jacfwd(lambda x: net.apply(variables, x[None], cond)[0]))(image)
    return np.abs(np.asarray(jac)).sum(axis=(2, 5))


# Each num_hierarchies and each num_resnet once by default (the cheapest pairing to
# compile); the whole grid with -m slow.
DEPTHS = [(1, 2), (2, 1), (3, 0)]
SLOW_DEPTHS = [pytest.param(*d, marks=pytest.mark.slow)
               for d in [(1, 0), (1, 1), (2, 0), (2, 2), (3, 1), (3, 2)]]


@pytest.mark.parametrize(("num_hierarchies", "num_resnet"), DEPTHS + SLOW_DEPTHS)
def test_output_ignores_the_current_and_later_pixels(num_hierarchies, num_resnet):
    net = PixelCNNNetwork((H, W, C), cond_shape=(2,), num_resnet=num_resnet,
                          num_hierarchies=num_hierarchies, num_filters=4, num_logistic_mix=1)
    image = jax.random.uniform(jax.random.key(0), (H, W, C), maxval=255.0)
    cond = jnp.array([[0.3, -1.0]])
    variables = perturbed(jax.jit(net.init)(init_key(1), image[None], cond),
                          jax.random.key(2))
    dep = pixel_dependence(net, variables, image, cond)
    order = np.arange(H * W).reshape(H, W)
    for i in range(H):
        for j in range(W):
            future = order >= order[i, j]
            assert np.all(dep[i, j][future] == 0.0), (i, j, np.argwhere(dep[i, j] * future))
            past = ~future
            if num_resnet >= 1:  # deep enough to see every earlier pixel: no blind spot
                assert np.all(dep[i, j][past] > 0.0), (i, j, np.argwhere(~(dep[i, j] > 0) & past))
    # Even the shallowest network sees the left, upper-left, upper and upper-right pixels.
    i, j = 3, 2
    assert np.all(dep[i, j][[i, i - 1, i - 1, i - 1], [j - 1, j - 1, j, j + 1]] > 0)


def test_conditioning_enters_every_gated_block_and_labels_match_one_hot():
    net = PixelCNNNetwork((4, 4, 1), cond_shape=(3,), num_resnet=0, num_hierarchies=2,
                          num_filters=4, num_logistic_mix=2)
    images = jax.random.randint(jax.random.key(3), (2, 4, 4, 1), 0, 256)
    labels = jnp.array([0, 2])
    init, apply = jitted(net)
    variables = init(init_key(4), images, labels)
    blocks = [name for name in variables["params"] if name.startswith(("up_", "down_"))]
    assert len(blocks) == 2  # num_resnet=0: one block pair (u, ul), at the finer level
    for name in blocks:
        assert variables["params"][name]["cond"]["kernel"].shape == (3, 8)  # to both gate halves
    out_labels = apply(variables, images, labels)
    out_onehot = apply(variables, images, jax.nn.one_hot(labels, 3))
    np.testing.assert_array_equal(out_labels, out_onehot)
    grad = jax.jit(jax.grad(lambda c: net.apply(variables, images, c).sum()))(
        jax.nn.one_hot(labels, 3))
    assert np.all(np.abs(np.asarray(grad)) > 0)
    assert not np.allclose(out_labels, apply(variables, images, jnp.array([1, 1])))


def test_weight_norm_data_init_standardises_each_layer_output():
    conv = WeightNormConv(5, (2, 3), padding=((1, 0), (1, 1)), init_scale=0.5)
    x = 3.0 + 2.0 * jax.random.normal(jax.random.key(5), (8, 6, 6, 4))
    variables = conv.init(init_key(6), x)
    y, updated = conv.apply(variables, x, data_init=True, mutable=["params"])
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=(0, 1, 2)), 0.5, rtol=1e-4)
    np.testing.assert_allclose(conv.apply(updated, x), y, atol=1e-5)  # the params say the same
    kernel = variables["params"]["kernel"]
    assert not np.allclose(conv.apply(variables, x), y)
    # Weight norm: the effective kernel's per-output-channel norm is the scale g.
    g = updated["params"]["scale"]
    w = g * kernel / jnp.sqrt((kernel**2).sum(axis=(0, 1, 2)))
    np.testing.assert_allclose(jnp.sqrt((w**2).sum(axis=(0, 1, 2))), jnp.abs(g), rtol=1e-5)


def test_data_init_of_the_whole_network_standardises_its_output():
    net = PixelCNNNetwork((6, 6, 1), num_resnet=0, num_hierarchies=2, num_filters=8,
                          num_logistic_mix=3)
    images = jax.random.randint(jax.random.key(7), (16, 6, 6, 1), 0, 256)
    init, apply = jitted(net)
    variables = init(init_key(8), images)
    out, updated = apply(variables, images, data_init=True, mutable=("params",))
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1.0, rtol=1e-3)
    np.testing.assert_allclose(apply(updated, images), out, atol=1e-4)


def test_dropout_uses_its_own_rng_only_in_training():
    net = PixelCNNNetwork((4, 4, 1), num_resnet=1, num_hierarchies=1, num_filters=4,
                          num_logistic_mix=1, dropout_p=0.5)
    images = jax.random.randint(jax.random.key(9), (2, 4, 4, 1), 0, 256)
    init, apply = jitted(net)
    variables = init(init_key(10), images)
    eval_out = apply(variables, images)
    a = apply(variables, images, train=True, rngs={"dropout": jax.random.key(0)})
    b = apply(variables, images, train=True, rngs={"dropout": jax.random.key(1)})
    a2 = apply(variables, images, train=True, rngs={"dropout": jax.random.key(0)})
    np.testing.assert_array_equal(a, a2)
    assert not np.allclose(a, b) and not np.allclose(a, eval_out)
    with pytest.raises(flax.errors.InvalidRngError):
        net.apply(variables, images, train=True)


def test_without_weight_norm():
    net = PixelCNNNetwork((4, 4, 1), num_resnet=0, num_hierarchies=2, num_filters=4,
                          num_logistic_mix=1, use_weight_norm=False)
    images = jnp.zeros((1, 4, 4, 1))
    init, apply = jitted(net)
    variables = init(init_key(11), images)
    assert "scale" not in variables["params"]["in_u"]
    assert np.all(np.isfinite(apply(variables, images)))
    with pytest.raises(ValueError, match="needs weight normalisation"):
        net.apply(variables, images, data_init=True, mutable=["params"])


def test_clear_errors():
    net = PixelCNNNetwork((4, 4, 1), cond_shape=(3,), num_resnet=0, num_hierarchies=1,
                          num_filters=2, num_logistic_mix=1)
    with pytest.raises(ValueError, match=r"expected images of shape \(batch, \*\(4, 4, 1\)\)"):
        net.init(init_key(0), jnp.zeros((1, 4, 5, 1)), jnp.array([0]))
    with pytest.raises(ValueError, match=r"conditional \(cond_shape=\(3,\)\); pass cond"):
        net.init(init_key(0), jnp.zeros((1, 4, 4, 1)))
    with pytest.raises(ValueError, match=r"expected cond with trailing shape \(3,\)"):
        net.init(init_key(0), jnp.zeros((1, 4, 4, 1)), jnp.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"must broadcast to \(1,\), got cond of shape \(2, 3\)"):
        net.init(init_key(0), jnp.zeros((1, 4, 4, 1)), jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"class labels must be in \[0, 3\)"):
        net.init(init_key(0), jnp.zeros((1, 4, 4, 1)), jnp.array([3]))
    unconditional = net.clone(cond_shape=None)
    with pytest.raises(ValueError, match="unconditional"):
        unconditional.init(init_key(0), jnp.zeros((1, 4, 4, 1)), jnp.zeros((1, 3)))
