"""PixelCNN++ as a density model over 8-bit images: a network plus the logistic mixture.

    import jflows.distributions as jd

    model = jd.pixel_cnn((28, 28, 1), cond_shape=(10,), num_resnet=5, num_hierarchies=3,
                         num_filters=128, num_logistic_mix=5)
    params, state = model.init(key, images=first_batch, cond=first_labels)  # data-dependent
    log_p = model.log_prob(params, state, images, cond=labels)        # nats per image
    log_p, state, _ = model.log_prob_and_state(params, state, images, cond=labels,
                                               key=dropout_key)        # training: dropout on
    bpd = model.bits_per_dim(params, state, images, cond=labels)      # -log_p / (H W C ln 2)
    samples = model.sample(params, state, key, 16, cond=labels16)     # int32 in [0, 255]

``log p(x) = sum_{i,j} log p(x_ij | x_<ij, cond)`` with each factor the discretized
logistic mixture of :mod:`jflows.distributions.logistic_mixture` whose raw parameters the
:class:`jflows.nets.pixelcnnpp.PixelCNNNetwork` computes from the pixels before ``(i, j)``. The
constructor's arguments and defaults mirror TFP's ``tfd.PixelCNN`` (``cond_shape`` is
TFP's ``conditional_shape``). The model follows the
:class:`~jflows.distributions.DensityModel` protocol; it has no state (``state = ()``),
so ``log_prob_and_state`` returns the state it is given. Its params are in the dtype given
to ``init`` (the network computes in it).

Inputs. Images are integers ``0 .. 255`` with trailing shape ``image_shape``; float images
are refused (scale ``[0, 1]`` floats by 255 and cast). Values outside ``0 .. 255`` are an
error when they are known (eager calls, NumPy or JAX arrays; uint8 images need no check);
under ``jax.jit`` they cannot be checked and are not clipped: such a pixel gets the tail
mass beyond its value, not a probability of the model. ``cond`` follows
:mod:`jflows.conditioning`; with ``cond_shape=(num_classes,)`` integer class labels of any
batch shape are one-hot encoded first (labels outside ``[0, num_classes)``: the same
eager-only check). The batch shapes of images and cond broadcast.

Sampling is autoregressive, one pixel at a time in raster order (the channels of a pixel
come from the same mixture parameters, coupled inside the mixture), inside one compiled
function; each pixel's randomness is ``fold_in(key, pixel_index)``, so every method draws
the same images for a key, up to float rounding of differently shaped operations.
``method="cached"`` (the default) keeps each layer's last rows of activations and computes
only the new pixel's activations per step (Fast PixelCNN++, Ramachandran et al. 2017; see
:mod:`jflows.nets.pixelcnn_cached`). ``method="naive"`` runs the whole network once per
pixel (the reference). ``method="banded"`` uses that the network is causal, so its output
in rows ``< h`` is the same whether it sees the full image or only its top ``h`` rows: rows
are sampled in ``num_row_buckets`` bands (default 4) and each band runs the network on the
image cropped to the band's last row, about ``(1 + 1/num_row_buckets) / 2`` of the naive
cost (each band is one more compiled network shape).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jflows import units
from jflows.bijectors.base import check_event_shape, refuse_as_pytree
from jflows.conditioning import (
    CondShape,
    check_cond,
    cond_batch_shape,
    normalize_cond_shape,
    sample_batch_shape,
)
from jflows.distributions import logistic_mixture
from jflows.distributions.base import (
    abstract_init,
    check_init_dtype,
    check_key,
    check_params_and_state,
    log_prob_from,
    model_dtype,
)
from jflows.nets.logistic_mixture_layout import NUM_VALUES
from jflows.nets.pixelcnn_cached import sample_cached
from jflows.nets.pixelcnnpp import PixelCNNNetwork, concrete_values, one_hot_labels


class PixelCNN(NamedTuple):
    """PixelCNN++ as pure functions: the :class:`~jflows.distributions.DensityModel`
    fields, then two extras.

    * ``init(key, dtype=None, *, images=None, cond=None) -> (params, ())``: with ``images``
      (a batch of real images, and their ``cond``) and ``use_data_init``, weight-norm
      data-dependent init on them.
    * ``log_prob(params, state, images, *, cond=None, key=None)``: nats per image, shape
      the batch shape; no dropout.
    * ``log_prob_and_state(params, state, images, *, cond=None, train=True, key=None)
      -> (log_prob, state, ())``: ``train=True`` applies dropout drawn from ``key``.
    * ``sample(params, state, key, sample_shape=(), *, cond=None, method="cached",
      num_row_buckets=None)``: int32 images ``batch_shape + image_shape``, ``batch_shape``
      the broadcast of ``sample_shape`` and cond's batch shape; ``method`` one of
      :data:`SAMPLING_METHODS` (``num_row_buckets`` only with ``"banded"``);
      ``sample_and_log_prob`` likewise.
    * ``bits_per_dim(params, state, images, *, cond=None, train=False, key=None)``:
      ``-log_prob / (H W C ln 2)`` (:func:`jflows.units.bits_per_dim`).
    * ``network``: the :class:`~jflows.nets.pixelcnnpp.PixelCNNNetwork`, for direct
      ``apply`` calls.
    """

    init: Callable
    log_prob: Callable
    log_prob_and_state: Callable
    sample: Callable
    sample_and_log_prob: Callable
    event_shape: tuple[int, int, int]
    cond_shape: CondShape
    bits_per_dim: Callable
    network: PixelCNNNetwork


refuse_as_pytree(PixelCNN)


def row_bands(height: int, num_row_buckets: int) -> list[tuple[int, int]]:
    """Split rows ``[0, height)`` into ``<= num_row_buckets`` bands ``[start, stop)``."""
    if num_row_buckets < 1:
        raise ValueError(f"num_row_buckets must be >= 1, got {num_row_buckets}.")
    stops = sorted({math.ceil(height * b / num_row_buckets) for b in range(1, num_row_buckets + 1)})
    return list(zip([0, *stops[:-1]], stops, strict=True))


SAMPLING_METHODS = ("cached", "banded", "naive")
"""``sample``'s methods: cached activations (default), row bands of network passes, and one
full network pass per pixel (the reference)."""


def sampling_bands(method: str, num_row_buckets: int | None, name: str) -> int | None:
    """The number of row bands of ``method`` (``None`` for ``'cached'``), checked.

    ``num_row_buckets`` goes with ``method='banded'`` only (default 4); ``'naive'`` is one
    band.
    """
    if method not in SAMPLING_METHODS:
        raise ValueError(f"{name}: method must be one of {SAMPLING_METHODS}, got {method!r}.")
    if method != "banded":
        if num_row_buckets is not None:
            raise ValueError(f"{name}: num_row_buckets goes with method='banded', got "
                             f"num_row_buckets={num_row_buckets} with method={method!r}.")
        return 1 if method == "naive" else None
    num_row_buckets = 4 if num_row_buckets is None else num_row_buckets
    row_bands(1, num_row_buckets)  # checks num_row_buckets >= 1
    return num_row_buckets


def check_pixels(images, image_shape: tuple[int, int, int], name: str) -> jax.Array:
    """``images`` as a JAX integer array of trailing shape ``image_shape``, values 0..255.

    The values are checked when they are known (not under ``jit``) and the dtype can hold
    values outside ``0 .. 255`` (so uint8 images are never copied back to the host).
    """
    check_event_shape(images, image_shape, name, "the image shape (H, W, C)")
    dtype = jnp.result_type(images)
    if not jnp.issubdtype(dtype, jnp.integer):
        raise ValueError(f"{name}: expected integer pixel values 0..255, got dtype {dtype} "
                         "(scale [0, 1] floats by 255 and cast).")
    limits = jnp.iinfo(dtype)
    values = (concrete_values(images)
              if limits.min < 0 or limits.max > NUM_VALUES - 1 else None)
    if values is not None and values.size and not (
            values.min() >= 0 and values.max() <= NUM_VALUES - 1):
        raise ValueError(f"{name}: expected pixel values in 0..{NUM_VALUES - 1}, got values "
                         f"from {values.min()} to {values.max()}.")
    return jnp.asarray(images)


def pixel_cnn(
    image_shape: Sequence[int],
    cond_shape: Sequence[int] | None = None,
    num_resnet: int = 5,
    num_hierarchies: int = 3,
    num_filters: int = 160,
    num_logistic_mix: int = 10,
    dropout_p: float = 0.5,
    use_weight_norm: bool = True,
    use_data_init: bool = True,
) -> PixelCNN:
    """A PixelCNN++ model over images of ``image_shape = (H, W, C)``, values 0..255.

    ``cond_shape``: shape of one conditioning input (``(num_classes,)`` for class
    conditioning, which also accepts integer labels), ``None`` for an unconditional model.
    ``use_data_init``: ``init`` takes ``images`` (and their ``cond``) and sets each
    weight-normalised layer's scale and bias from that batch (Salimans & Kingma 2016), as
    the paper does.
    """
    image_shape = tuple(int(d) for d in image_shape)
    if len(image_shape) != 3 or min(image_shape) < 1:
        raise ValueError(f"pixel_cnn: image_shape must be (height, width, channels), "
                         f"got {image_shape}.")
    cond_shape = normalize_cond_shape(cond_shape, "pixel_cnn")
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
        cond_shape=cond_shape,
        num_resnet=num_resnet,
        num_hierarchies=num_hierarchies,
        num_filters=num_filters,
        num_logistic_mix=num_logistic_mix,
        dropout_p=dropout_p,
        use_weight_norm=use_weight_norm,
    )
    num_dims = math.prod(image_shape)

    def _flatten(images, cond, name):
        """``(N, H, W, C)`` images, ``(N,) + cond_shape`` one-hot/vector cond (or None) and
        the batch shape: the broadcast of the images' and cond's batch shapes."""
        images = check_pixels(images, image_shape, name)
        batch_shape = tuple(images.shape[:-3])
        cond = check_cond(one_hot_labels(cond, cond_shape, name), cond_shape, batch_shape, name)
        if cond is not None:
            batch_shape = cond_batch_shape(cond, cond_shape, batch_shape, name)
            cond = jnp.broadcast_to(cond, (*batch_shape, *cond_shape)).reshape(-1, *cond_shape)
        flat = jnp.broadcast_to(images, (*batch_shape, *image_shape)).reshape(-1, *image_shape)
        return flat, cond, batch_shape

    def _dropout_rngs(train, key, name):
        if not train or dropout_p == 0.0:
            return {}
        if key is None:
            raise ValueError(f"{name}: train=True applies dropout (dropout_p={dropout_p}) and "
                             "needs a PRNG key (key=...), got key=None; pass train=False to "
                             "evaluate without dropout.")
        check_key(key, name)
        return {"dropout": key}

    def _in_params_dtype(params, images):
        """The network computes in the params' dtype: hand it the pixels in that dtype."""
        return images.astype(model_dtype(params, ()))

    _network_init = jax.jit(network.init)

    @jax.jit
    def _data_init(params, images, cond):
        _, updated = network.apply({"params": params}, _in_params_dtype(params, images), cond,
                                   data_init=True, mutable=["params"])
        return updated["params"]

    def init(key, dtype=None, *, images=None, cond=None):
        name = "pixel_cnn.init"
        check_key(key, name)
        dtype = check_init_dtype(dtype, name)
        if images is None and cond is not None:
            raise ValueError(f"{name}: got cond but no images; cond only goes with the "
                             "images= batch of the data-dependent init.")
        if images is not None and not use_data_init:
            raise ValueError(f"{name}: got images= for a data-dependent init, but the model "
                             "was built with use_data_init=False.")
        # The weights are drawn with the counter-based 'rbg' generator seeded from `key`:
        # XLA compiles one threefry kernel per weight tensor, which takes tens of seconds on
        # CPU for this network, and 'rbg' a fraction of that. Same key, same params.
        init_key = jax.random.wrap_key_data(jax.random.bits(key, (4,), jnp.uint32), impl="rbg")
        example = jnp.zeros((1, *image_shape), dtype)
        example_cond = None if cond_shape is None else jnp.zeros((1, *cond_shape), dtype)
        params = _network_init(init_key, example, example_cond)["params"]
        params = jax.tree.map(lambda p: p.astype(dtype), params)
        if images is not None:
            flat, flat_cond, _ = _flatten(images, cond, name)
            params = _data_init(params, flat, flat_cond)
        return params, ()

    expected = abstract_init(init)

    def log_prob_and_state(params, state, images, *, cond=None, train=True, key=None):
        name = "pixel_cnn.log_prob"
        check_params_and_state(expected, params, state, name)
        flat, flat_cond, batch_shape = _flatten(images, cond, name)
        raw = network.apply({"params": params}, _in_params_dtype(params, flat), flat_cond,
                            train=train, rngs=_dropout_rngs(train, key, name))
        per_pixel = logistic_mixture.log_prob(raw, flat, num_logistic_mix)
        return per_pixel.sum(axis=(1, 2)).reshape(batch_shape), state, ()

    def bits_per_dim(params, state, images, *, cond=None, train=False, key=None):
        log_p = log_prob_and_state(params, state, images, cond=cond, train=train, key=key)[0]
        return units.bits_per_dim(log_p, num_dims)

    def _draw_pixel(key):
        def draw(raw, t):  # pixel t = r W + c from its mixture params (n, P)
            return logistic_mixture.sample(raw[:, None, None], jax.random.fold_in(key, t),
                                           image_shape[-1], num_logistic_mix)[:, 0, 0]
        return draw

    def _sample_passes(params, key, n, cond, num_row_buckets):
        """One network pass per pixel, on the image cropped to the pixel's row band."""
        height, width, channels = image_shape
        images = jnp.zeros((n, *image_shape), jnp.int32)
        draw = _draw_pixel(key)
        for start, stop in row_bands(height, num_row_buckets):
            # The same parameters serve any image height; only the shape check needs it.
            band_network = network.clone(image_shape=(stop, width, channels))

            def step(t, images, stop=stop, band_network=band_network):
                row, col = t // width, t % width
                raw = band_network.apply({"params": params},
                                         _in_params_dtype(params, images[:, :stop]), cond)
                pixel = draw(raw[:, row, col], t)
                return jax.lax.dynamic_update_slice(images, pixel[:, None, None], (0, row, col, 0))

            images = jax.lax.fori_loop(start * width, stop * width, step, images)
        return images

    def _sample_flat(params, key, n, cond, method, num_row_buckets):
        if method == "cached":
            return sample_cached(network, params, cond, n, _draw_pixel(key))
        return _sample_passes(params, key, n, cond, num_row_buckets)

    _sample_jit = jax.jit(_sample_flat, static_argnums=(2, 4, 5))

    def _draw(params, state, key, sample_shape, cond, method, num_row_buckets, name):
        """``(images, cond)``: the samples and the cond broadcast to their batch shape."""
        check_params_and_state(expected, params, state, name)
        check_key(key, name)
        num_row_buckets = sampling_bands(method, num_row_buckets, name)
        shape, cond = sample_batch_shape(sample_shape, one_hot_labels(cond, cond_shape, name),
                                         cond_shape, name)
        n = math.prod(shape)
        flat_cond = None
        if cond is not None:
            cond = jnp.broadcast_to(cond, (*shape, *cond_shape))
            flat_cond = cond.reshape(n, *cond_shape)
        images = _sample_jit(params, key, n, flat_cond, method, num_row_buckets)
        return images.reshape(*shape, *image_shape), cond

    def sample(params, state, key, sample_shape=(), *, cond=None, method="cached",
               num_row_buckets=None):
        return _draw(params, state, key, sample_shape, cond, method, num_row_buckets,
                     "pixel_cnn.sample")[0]

    def sample_and_log_prob(params, state, key, sample_shape=(), *, cond=None,
                            method="cached", num_row_buckets=None):
        images, cond = _draw(params, state, key, sample_shape, cond, method, num_row_buckets,
                             "pixel_cnn.sample_and_log_prob")
        return images, log_prob_from(log_prob_and_state)(params, state, images, cond=cond)

    return PixelCNN(init, log_prob_from(log_prob_and_state), log_prob_and_state, sample,
                    sample_and_log_prob, image_shape, cond_shape, bits_per_dim, network)


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


def _batch_cond(model: PixelCNN, batch):
    """``batch["label"]`` for a conditional model (the batch layout of :mod:`jflows.data`)."""
    return None if model.cond_shape is None else batch["label"]


def training_loss_fn(model: PixelCNN):
    """``loss_fn(params, model_state, batch, key) -> (loss, (model_state, metrics))``.

    The per-device loss of :func:`jflows.train.make_train_step`: mean bits/dim of
    ``batch["x"]`` (conditioned on ``batch["label"]`` when the model has a ``cond_shape``),
    from ``log_prob_and_state`` with ``train=True`` and dropout drawn from ``key``. The
    model has no state, so the ``model_state`` it returns is the one it was given.
    """
    num_dims = math.prod(model.event_shape)

    def loss_fn(params, model_state, batch, key):
        log_p, model_state, _ = model.log_prob_and_state(
            params, model_state, batch["x"], cond=_batch_cond(model, batch), train=True,
            key=key)
        bpd = units.bits_per_dim(log_p, num_dims).mean()
        return bpd, (model_state, {"bits_per_dim": bpd})

    return loss_fn


def evaluation_fn(model: PixelCNN):
    """``eval_fn(params, model_state, batch, key) -> {"bits_per_dim": mean}`` (no dropout)."""

    def eval_fn(params, model_state, batch, key):
        del key
        bpd = model.bits_per_dim(params, model_state, batch["x"], cond=_batch_cond(model, batch))
        return {"bits_per_dim": bpd.mean()}

    return eval_fn
