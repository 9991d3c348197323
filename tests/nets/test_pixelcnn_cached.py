"""Cached PixelCNN++ sampling draws what one network pass per pixel draws.

A causal network makes the naive sampler's image the unique image whose every pixel ``t``
is ``draw(network(image)[t], t)``: the network's output at ``t`` is the same for the image
so far and for the finished image. So one network pass over a cached sample checks it
against the naive loop, pixel by pixel (tests/distributions/test_pixelcnn.py also runs the
naive loop itself). The draw here is a deterministic, fine-grained function of the mixture
parameters, so a wrong activation anywhere shows as a wrong pixel.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jflows.nets.pixelcnn_cached import effective_weights, sample_cached
from jflows.nets.pixelcnnpp import PixelCNNNetwork


def random_params(net, cond, seed):
    """Params of ``net``'s structure drawn at random everywhere (weight-norm scales and biases
    too, so no path is zero), by NumPy: no compiled init or random kernels."""
    shapes = jax.eval_shape(net.init, jax.random.key(0),
                            jnp.zeros((1, *net.image_shape)), None if cond is None else cond[:1])
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: jnp.asarray(rng.normal(0.0, 0.5, s.shape), jnp.float32),
                        shapes["params"])


def pixel_draw(channels):
    """``draw(raw, t)``: a pixel from its mixture params, 0..255 at a resolution of 1/60 of a
    raw unit."""
    def draw(raw, t):
        return jnp.clip(jnp.round(127.5 + 60.0 * jnp.tanh(raw[:, :channels] + 0.01 * t)), 0, 255)
    return draw


def redrawn(net, params, images, cond):
    """Every pixel drawn again from one network pass over ``images`` (the naive rule)."""
    height, width, channels = net.image_shape
    draw = pixel_draw(channels)
    raw = net.apply({"params": params}, images.astype(jnp.float32), cond)
    t = jnp.arange(height * width).reshape(height, width)
    pixels = jax.vmap(jax.vmap(draw, in_axes=(1, 0)), in_axes=(1, 0))(raw, t)
    return jnp.moveaxis(pixels, (0, 1), (1, 2)).astype(jnp.int32)


# (image_shape, cond_shape, num_resnet, num_hierarchies): odd and non-square sizes exercise
# the ceil(n / 2) levels and the cropped upsampling; num_resnet=0 the bare hierarchy.
# Two by default (each compiles a sampler), all with -m slow.
CONFIGS = [((7, 6, 3), (3,), 1, 3), ((4, 5, 2), (2,), 0, 2),
           *(pytest.param(*c, marks=pytest.mark.slow)
             for c in [((5, 4, 1), None, 2, 2), ((3, 3, 1), None, 1, 1)])]


@pytest.mark.parametrize(("image_shape", "cond_shape", "num_resnet", "num_hierarchies"),
                         CONFIGS)
def test_cached_samples_follow_the_naive_rule(image_shape, cond_shape, num_resnet,
                                             num_hierarchies):
    net = PixelCNNNetwork(image_shape, cond_shape=cond_shape, num_resnet=num_resnet,
                          num_hierarchies=num_hierarchies, num_filters=6, num_logistic_mix=2)
    batch = 3
    cond = None if cond_shape is None else jnp.arange(batch) % cond_shape[0]
    params = random_params(net, cond, 0)
    sample = jax.jit(lambda p, c: sample_cached(net, p, c, batch, pixel_draw(image_shape[-1])))
    images = sample(params, cond)
    assert images.shape == (batch, *image_shape) and images.dtype == jnp.int32
    assert len(np.unique(np.asarray(images))) > 10  # the draw is not saturated
    expected = np.asarray(jax.jit(partial(redrawn, net))(params, images, cond))
    diff = np.abs(np.asarray(images) - expected)
    assert diff.max() <= 1, np.argwhere(diff > 1)
    assert np.mean(diff != 0) <= 0.01
    if cond is not None:  # the class changes the samples
        other = sample(params, (cond + 1) % cond_shape[0])
        assert not np.array_equal(np.asarray(other[0]), np.asarray(images[0]))


def test_effective_weights_apply_weight_norm_once_and_keep_the_tree():
    params = {"a": {"kernel": jnp.ones((1, 1, 2, 3)), "scale": 2.0 * jnp.ones(3),
                    "bias": jnp.zeros(3)}, "b": {"cond": {"kernel": jnp.ones((2, 4))}}}
    weights = effective_weights(params)
    assert set(weights["a"]) == {"kernel", "bias"}
    assert weights["b"]["cond"]["kernel"] is params["b"]["cond"]["kernel"]
    np.testing.assert_allclose(weights["a"]["kernel"], 2.0 / np.sqrt(2.0))
