"""PixelCNN++ as a distribution over 8-bit images: a network plus the logistic mixture.

    import jflows.distributions as jd

    model = jd.pixel_cnn((28, 28, 1), conditional_shape=(10,), num_resnet=5,
                         num_hierarchies=3, num_filters=128, num_logistic_mix=5)
    params = model.init(key, images=first_batch, cond=first_labels)  # data-dependent init
    log_p = model.log_prob(params, images, labels)                     # nats per image
    loss = model.bits_per_dim(params, images, labels, train=True, key=dropout_key).mean()
    samples = model.sample(params, key, 16, labels16)                  # int32 in [0, 255]

``log p(x) = sum_{i,j} log p(x_ij | x_<ij, cond)`` with each factor the discretized
logistic mixture of :mod:`jflows.distributions.logistic_mixture` whose raw parameters the
:class:`jflows.nets.pixelcnnpp.PixelCNNNetwork` computes from the pixels before ``(i, j)``. The
constructor's arguments and defaults mirror TFP's ``tfd.PixelCNN``.

Sampling is autoregressive: one network pass per pixel (the channels of a pixel come from
the same pass, coupled inside the mixture), run as ``lax.fori_loop`` s inside one compiled
function. Because the network is causal, its output in rows ``< h`` is the same whether it
sees the full image or only its top ``h`` rows, so rows are sampled in
``num_row_buckets`` bands and each band runs the network on the image cropped to the
band's last row: the cost falls from ``H * W`` full passes to about
``(1 + 1/num_row_buckets) / 2`` of that (``num_row_buckets=1`` is the plain baseline; each
band is one more compiled network shape). Each pixel's randomness is
``fold_in(key, pixel_index)``, so a key gives the same images for every band setting, up to
float rounding of the differently shaped convolutions. Caching the activations between
steps (Fast PixelCNN++, Ramachandran et al. 2017) is not implemented.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jflows.bijectors.base import check_event_shape
from jflows.data.images import bits_per_dim as nats_to_bits_per_dim
from jflows.distributions import logistic_mixture
from jflows.nets.pixelcnnpp import PixelCNNNetwork


class PixelCNN(NamedTuple):
    """PixelCNN++ as pure functions (its first five fields follow ``Distribution``'s).

    * ``init(key, dtype=None, *, images=None, cond=None) -> params``: with ``images`` (a
      batch of real images) and ``use_data_init``, weight-norm data-dependent init on them.
    * ``log_prob(params, images, cond=None, *, train=False, key=None)``: nats per image,
      shape ``images.shape[:-3]``; ``train=True`` applies dropout and needs ``key``.
    * ``sample(params, key, sample_shape=(), cond=None, *, num_row_buckets=4)``: int32
      images ``sample_shape + image_shape``.
    * ``bits_per_dim(...)``: ``-log_prob / (H W C log 2)``, same arguments as ``log_prob``.
    * ``network``: the :class:`~jflows.nets.pixelcnnpp.PixelCNNNetwork`, for direct ``apply`` calls.
    """

    init: Callable[..., Any]
    log_prob: Callable[..., jax.Array]
    sample: Callable[..., jax.Array]
    event_shape: tuple[int, int, int]
    cdf: None
    bits_per_dim: Callable[..., jax.Array]
    network: PixelCNNNetwork


def _sample_shape(sample_shape) -> tuple[int, ...]:
    return (sample_shape,) if isinstance(sample_shape, int) else tuple(sample_shape)


def row_bands(height: int, num_row_buckets: int) -> list[tuple[int, int]]:
    """Split rows ``[0, height)`` into ``<= num_row_buckets`` bands ``[start, stop)``."""
    if num_row_buckets < 1:
        raise ValueError(f"num_row_buckets must be >= 1, got {num_row_buckets}.")
    stops = sorted({math.ceil(height * b / num_row_buckets) for b in range(1, num_row_buckets + 1)})
    return list(zip([0, *stops[:-1]], stops, strict=True))


def pixel_cnn(
    image_shape: Sequence[int],
    conditional_shape: Sequence[int] | None = None,
    num_resnet: int = 5,
    num_hierarchies: int = 3,
    num_filters: int = 160,
    num_logistic_mix: int = 10,
    dropout_p: float = 0.5,
    use_weight_norm: bool = True,
    use_data_init: bool = True,
) -> PixelCNN:
    """A PixelCNN++ distribution over images of ``image_shape = (H, W, C)``, values 0..255.

    ``conditional_shape``: shape of one conditioning input (``(num_classes,)`` for class
    conditioning, which also accepts integer labels), ``None`` for an unconditional model.
    ``use_data_init``: when ``init`` gets ``images``, set each weight-normalised layer's
    scale and bias from that batch (Salimans & Kingma 2016), as the paper does.
    """
    image_shape = tuple(int(d) for d in image_shape)
    if len(image_shape) != 3 or min(image_shape) < 1:
        raise ValueError(f"pixel_cnn: image_shape must be (height, width, channels), "
                         f"got {image_shape}.")
    if conditional_shape is not None:
        conditional_shape = tuple(int(d) for d in conditional_shape)
    if min(num_logistic_mix, num_filters, num_hierarchies) < 1 or num_resnet < 0:
        raise ValueError(f"pixel_cnn: need num_logistic_mix, num_filters, num_hierarchies >= 1 "
                         f"and num_resnet >= 0, got {num_logistic_mix}, {num_filters}, "
                         f"{num_hierarchies} and {num_resnet}.")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"pixel_cnn: dropout_p must be in [0, 1), got {dropout_p}.")
    if use_data_init and not use_weight_norm:
        raise ValueError("pixel_cnn: use_data_init needs use_weight_norm=True.")
    network = PixelCNNNetwork(
        image_shape=image_shape,
        conditional_shape=conditional_shape,
        num_resnet=num_resnet,
        num_hierarchies=num_hierarchies,
        num_filters=num_filters,
        num_logistic_mix=num_logistic_mix,
        dropout_p=dropout_p,
        use_weight_norm=use_weight_norm,
    )
    num_dims = math.prod(image_shape)

    def _flatten(images, cond, name):
        check_event_shape(images, image_shape, name, "the image shape (H, W, C)")
        if not jnp.issubdtype(jnp.result_type(images), jnp.integer):
            raise ValueError(f"{name}: expected integer pixel values 0..255, got dtype "
                             f"{jnp.result_type(images)} (scale [0, 1] floats by 255 and cast).")
        batch_shape = images.shape[:-3]
        flat = images.reshape(-1, *image_shape)
        if cond is not None:
            cond = jnp.asarray(cond)
            if cond.shape[:len(batch_shape)] != batch_shape:
                raise ValueError(f"{name}: cond must start with the images' batch shape "
                                 f"{batch_shape}, got shape {cond.shape}.")
            cond = cond.reshape(flat.shape[0], *cond.shape[len(batch_shape):])
        return flat, cond, batch_shape

    def _rngs(train, key, name):
        if not train or dropout_p == 0.0:
            return {}
        if key is None:
            raise ValueError(f"{name}: train=True applies dropout and needs a PRNG key "
                             "(key=...), got key=None.")
        return {"dropout": key}

    def init(key, dtype=None, *, images=None, cond=None):
        # The weights are drawn with the counter-based 'rbg' generator seeded from `key`:
        # XLA compiles one threefry kernel per weight tensor, which takes tens of seconds on
        # CPU for this network, and 'rbg' a fraction of that. Same key, same params.
        init_key = jax.random.wrap_key_data(jax.random.bits(key, (4,), jnp.uint32), impl="rbg")
        example = jnp.zeros((1, *image_shape), jnp.float32)
        example_cond = None
        if conditional_shape is not None:
            example_cond = jnp.zeros((1, *conditional_shape), jnp.float32)
        params = _init(init_key, example, example_cond)["params"]
        if images is not None and use_data_init:
            flat, flat_cond, _ = _flatten(images, cond, "pixel_cnn.init")
            params = _data_init(params, flat, flat_cond)
        if dtype is not None:
            params = jax.tree.map(lambda p: p.astype(dtype), params)
        return params

    _init = jax.jit(network.init)

    @jax.jit
    def _data_init(params, images, cond):
        _, updated = network.apply(
            {"params": params}, images, cond, data_init=True, mutable=["params"]
        )
        return updated["params"]

    def log_prob(params, images, cond=None, *, train=False, key=None):
        flat, flat_cond, batch_shape = _flatten(images, cond, "pixel_cnn.log_prob")
        raw = network.apply({"params": params}, flat, flat_cond, train=train,
                            rngs=_rngs(train, key, "pixel_cnn.log_prob"))
        per_pixel = logistic_mixture.log_prob(raw, flat, num_logistic_mix)
        return per_pixel.sum(axis=(1, 2)).reshape(batch_shape)

    def bits_per_dim(params, images, cond=None, *, train=False, key=None):
        return nats_to_bits_per_dim(log_prob(params, images, cond, train=train, key=key),
                                    num_dims)

    def _sample_flat(params, key, n, cond, num_row_buckets):
        height, width, channels = image_shape
        images = jnp.zeros((n, *image_shape), jnp.int32)
        for start, stop in row_bands(height, num_row_buckets):
            # The same parameters serve any image height; only the shape check needs it.
            band_network = network.clone(image_shape=(stop, width, channels))

            def step(t, images, stop=stop, band_network=band_network):
                row, col = t // width, t % width
                raw = band_network.apply({"params": params}, images[:, :stop], cond)
                raw_ij = jax.lax.dynamic_slice_in_dim(
                    jax.lax.dynamic_slice_in_dim(raw, row, 1, axis=1), col, 1, axis=2)
                pixel = logistic_mixture.sample(
                    raw_ij, jax.random.fold_in(key, t), channels, num_logistic_mix)
                return jax.lax.dynamic_update_slice(images, pixel, (0, row, col, 0))

            images = jax.lax.fori_loop(start * width, stop * width, step, images)
        return images

    _sample_jit = jax.jit(_sample_flat, static_argnums=(2, 4))

    def sample(params, key, sample_shape=(), cond=None, *, num_row_buckets=4):
        shape = _sample_shape(sample_shape)
        n = math.prod(shape)
        if cond is not None:
            cond = jnp.asarray(cond)
            if conditional_shape is not None:
                labels = (jnp.issubdtype(cond.dtype, jnp.integer) and len(conditional_shape) == 1
                          and cond.ndim <= len(shape))
                event = () if labels else conditional_shape
                cond = jnp.broadcast_to(cond, (*shape, *event)).reshape(n, *event)
        return _sample_jit(params, key, n, cond, num_row_buckets).reshape(*shape, *image_shape)

    return PixelCNN(init, log_prob, sample, image_shape, None, bits_per_dim, network)


def paper_optimizer(
    learning_rate: float = 1e-3, decay_per_step: float = 0.999995, b1: float = 0.95,
    b2: float = 0.9995,
) -> optax.GradientTransformation:
    """Adam with the learning rate decayed by ``decay_per_step`` each step (PixelCNN++ paper).

    The reference code (``train.py``) uses ``lr = 1e-3 * 0.999995**step`` and Adam with
    ``beta1 = 0.95, beta2 = 0.9995``; pair it with Polyak averaging of the parameters
    (EMA decay 0.9995) for evaluation and sampling.
    """
    schedule = optax.exponential_decay(learning_rate, transition_steps=1,
                                       decay_rate=decay_per_step)
    return optax.adam(schedule, b1=b1, b2=b2)


def training_loss_fn(model: PixelCNN):
    """``loss_fn(params, model_state, batch, key) -> (loss, (model_state, metrics))``.

    The per-device loss of :func:`jflows.train.make_train_step`: mean bits/dim of
    ``batch["x"]`` (conditioned on ``batch["label"]`` when the model has a
    ``conditional_shape``; the batch layout of :mod:`jflows.data`), with dropout drawn from
    ``key``. The model has
    no state, so ``model_state`` passes through.
    """
    conditional = model.network.conditional_shape is not None

    def loss_fn(params, model_state, batch, key):
        cond = batch["label"] if conditional else None
        bpd = model.bits_per_dim(params, batch["x"], cond, train=True, key=key).mean()
        return bpd, (model_state, {"bits_per_dim": bpd})

    return loss_fn


def evaluation_fn(model: PixelCNN):
    """``eval_fn(params, model_state, batch, key) -> {"bits_per_dim": mean}`` (no dropout)."""
    conditional = model.network.conditional_shape is not None

    def eval_fn(params, model_state, batch, key):
        del model_state, key
        cond = batch["label"] if conditional else None
        return {"bits_per_dim": model.bits_per_dim(params, batch["x"], cond).mean()}

    return eval_fn
