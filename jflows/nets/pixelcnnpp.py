"""The PixelCNN++ network (Salimans, Karpathy, Chen, Kingma 2017) as a Flax linen module.

The network maps an image ``(B, H, W, C)`` of pixel values in ``[0, 255]`` to the raw
parameters of a discretized logistic mixture at every pixel, ``(B, H, W, P)`` with
``P = num_params(C, num_logistic_mix)``, laid out as
:mod:`jflows.nets.logistic_mixture_layout` says (the likelihood,
:mod:`jflows.distributions.logistic_mixture`, reads it with the same layout). The
output at pixel ``(i, j)`` depends only on the pixels before it in raster order (rows
above, then the pixels to its left), which makes the product of the per-pixel
distributions a valid autoregressive model.

Architecture, as in the paper and its reference code (``pixel_cnn_pp/model.py``,
``nn.py``), re-written here:

* The input is rescaled to ``u = 2 x / 255 - 1`` and computed in ``x``'s floating dtype
  (integer pixels: JAX's default float), so the caller picks the dtype of the params.
* Two streams without a blind spot (van den Oord et al. 2016): ``u`` sees the rows
  strictly above a pixel (down-shifted ``2x3`` convolutions: zero padding of one row on
  top and one column on each side, followed by a one-row :func:`down_shift` at the
  input); ``ul`` sees the rows above and the pixels to the left (down-right-shifted
  ``2x2`` convolutions, padded on top and left, and a :func:`right_shift` at the input).
  A channel of ones is appended to the rescaled input so that the network can tell the
  image from the zero padding.
* Gated residual blocks (:class:`GatedResnet`) with concat-ELU:
  ``c1 = conv(concat_elu(x)) + nin(concat_elu(a))``,
  ``c2 = conv(dropout(concat_elu(c1))) + W_h h``, ``x + c2_a * sigmoid(c2_b)``, where
  ``a`` is the skip input (the ``u`` stream for ``ul``; in the down pass, the matching
  up-pass activation) and ``h`` the conditioning vector, projected and added to both
  halves of the gate. ``cond`` follows :mod:`jflows.conditioning` (``cond_shape``; integer
  class labels are one-hot encoded first, see :func:`conditioning_vector`).
* ``num_hierarchies`` resolutions: an up pass of ``num_resnet`` blocks per resolution
  with stride-2 shifted convolutions between them, and a down pass that upsamples with
  stride-2 shifted transposed convolutions and consumes every up-pass activation as a
  skip input (``num_resnet`` blocks at the coarsest level, ``num_resnet + 1`` at the
  others), a U-Net shape. Sizes not divisible by 2 are handled: downsampling gives
  ``ceil(n / 2)``, upsampling is cropped back to the skip's size (cropping bottom rows
  and right columns keeps the model causal).
* Weight normalisation ``W = g V / ||V||`` (Salimans & Kingma 2016) on every
  convolution, with optional data-dependent initialisation (``data_init=True`` with
  ``mutable=['params']``: each layer rescales ``g`` and shifts ``b`` so that its
  output has zero mean and variance ``init_scale**2`` over the given batch; the second
  convolution of each block uses ``init_scale = 0.1`` as in the reference).

Parameter names follow TFP's ``tfd.PixelCNN`` (``image_shape``, ``num_resnet``,
``num_hierarchies``, ``num_filters``, ``num_logistic_mix``, ``dropout_p``,
``use_weight_norm``), except ``cond_shape`` (TFP: ``conditional_shape``), the conditioning
vocabulary of every jflows model. Dropout draws from the ``'dropout'`` RNG stream.

The layers' pure pieces (:func:`weight_norm_kernel`, :func:`conv`, :func:`conv_transpose`,
:func:`gate`, :func:`network_input`, :func:`crop_upsampled`, :func:`level_sizes`,
:func:`block_name`) are shared with :mod:`jflows.nets.pixelcnn_cached`, which computes the
same network from the same params a pixel at a time for sampling.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jflows.conditioning import CondShape, check_cond, cond_batch_shape
from jflows.nets.logistic_mixture_layout import num_params, to_unit_interval

_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


def concat_elu(x: jax.Array) -> jax.Array:
    """``elu([x, -x])`` on the channel axis (doubles the channels)."""
    return jax.nn.elu(jnp.concatenate([x, -x], axis=-1))


def down_shift(x: jax.Array) -> jax.Array:
    """Shift ``(B, H, W, C)`` down by one row, filling the top row with zeros."""
    return jnp.pad(x, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]


def right_shift(x: jax.Array) -> jax.Array:
    """Shift ``(B, H, W, C)`` right by one column, filling the left column with zeros."""
    return jnp.pad(x, ((0, 0), (0, 0), (1, 0), (0, 0)))[:, :, :-1]


def weight_norm_kernel(direction: jax.Array, scale: jax.Array) -> jax.Array:
    """``W = g V / ||V||`` with the norm over each output channel's ``(kh, kw, in)`` slice."""
    norm = jnp.sqrt(jnp.sum(jnp.square(direction), axis=(0, 1, 2)))
    return scale * direction / norm


def conv(x, kernel, bias, strides=(1, 1), padding=((0, 0), (0, 0))) -> jax.Array:
    """``(B, H, W, I) -> (B, H', W', O)``: the convolution with explicit ``padding``, plus bias."""
    return jax.lax.conv_general_dilated(
        x, kernel, strides, padding, dimension_numbers=_DIMENSION_NUMBERS) + bias


def conv_transpose(x, kernel, bias, strides) -> jax.Array:
    """The 'VALID' transposed convolution (output ``s (n - 1) + k``), plus bias."""
    return jax.lax.conv_transpose(
        x, kernel, strides, "VALID", dimension_numbers=_DIMENSION_NUMBERS) + bias


def gate(x: jax.Array, c2: jax.Array) -> jax.Array:
    """The gated residual update ``x + a * sigmoid(b)`` with ``[a, b] = c2`` on channels."""
    value, gate_logits = jnp.split(c2, 2, axis=-1)
    return x + value * jax.nn.sigmoid(gate_logits)


def network_input(images: jax.Array) -> jax.Array:
    """Pixels ``0 .. 255`` rescaled to ``[-1, 1]`` with a channel of ones appended."""
    x = to_unit_interval(images)
    return jnp.concatenate([x, jnp.ones_like(x[..., :1])], axis=-1)


def level_sizes(height: int, width: int, num_hierarchies: int) -> list[tuple[int, int]]:
    """``(H_k, W_k)`` of each resolution: ``H_0 = H`` and ``H_{k+1} = ceil(H_k / 2)``."""
    sizes = [(height, width)]
    for _ in range(num_hierarchies - 1):
        h, w = sizes[-1]
        sizes.append(((h + 1) // 2, (w + 1) // 2))
    return sizes


def num_blocks(down: bool, level: int, num_resnet: int, num_hierarchies: int) -> int:
    """Gated blocks per stream at ``level``: ``num_resnet`` in the up pass and at the coarsest
    level of the down pass, ``num_resnet + 1`` at the other down-pass levels."""
    return num_resnet + (down and level < num_hierarchies - 1)


def block_name(down: bool, level: int, index: int, stream: str) -> str:
    """Param name of a gated block: ``'up_1_0_u'``, ``'down_0_2_ul'``, ..."""
    return f"{'down' if down else 'up'}_{level}_{index}_{stream}"


class WeightNormConv(nn.Module):
    """A 2-D convolution or transposed convolution with optional weight normalisation.

    ``y = conv(x, g * V / ||V||) + b`` with the norm over each output channel's
    ``(kh, kw, in)`` kernel slice. ``padding`` is explicit ``((top, bottom), (left,
    right))`` for a convolution; a transposed convolution (``transpose=True``) is the
    plain 'VALID' one (output ``s (n - 1) + k``), which its caller crops.
    """

    features: int
    kernel_size: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    padding: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))
    transpose: bool = False
    use_weight_norm: bool = True
    init_scale: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array, *, data_init: bool = False) -> jax.Array:
        shape = (*self.kernel_size, x.shape[-1], self.features)
        if self.use_weight_norm:
            direction = self.param("kernel", nn.initializers.normal(0.05), shape)
            scale = self.param("scale", nn.initializers.ones, (self.features,))
            kernel = weight_norm_kernel(direction, scale)
        else:
            lecun = nn.initializers.variance_scaling(self.init_scale**2, "fan_in", "normal")
            kernel = self.param("kernel", lecun, shape)
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        if self.transpose:
            y = conv_transpose(x, kernel, bias, self.strides)
        else:
            y = conv(x, kernel, bias, self.strides, self.padding)
        if data_init:
            if not self.use_weight_norm:
                raise ValueError(
                    "data-dependent initialisation needs weight normalisation "
                    "(use_weight_norm=True), got use_weight_norm=False."
                )
            mean = jnp.mean(y, axis=(0, 1, 2))
            factor = self.init_scale / jnp.sqrt(jnp.var(y, axis=(0, 1, 2)) + 1e-10)
            self.put_variable("params", "scale", scale * factor)
            self.put_variable("params", "bias", (bias - mean) * factor)
            y = (y - mean) * factor
        return y


def down_shifted_conv(features, kernel_size=(2, 3), strides=(1, 1), **kwargs) -> WeightNormConv:
    """Convolution whose output at ``(i, j)`` sees rows ``<= i`` only (pad top and sides)."""
    kh, kw = kernel_size
    padding = ((kh - 1, 0), ((kw - 1) // 2, (kw - 1) // 2))
    return WeightNormConv(features, kernel_size, strides, padding, **kwargs)


def down_right_shifted_conv(
    features, kernel_size=(2, 2), strides=(1, 1), **kwargs
) -> WeightNormConv:
    """Convolution whose output at ``(i, j)`` sees rows ``<= i`` and columns ``<= j``."""
    kh, kw = kernel_size
    return WeightNormConv(features, kernel_size, strides, ((kh - 1, 0), (kw - 1, 0)), **kwargs)


UPSAMPLE_LEFT = {"u": 1, "ul": 0}
"""Columns cropped on the left of each stream's upsampled (transposed conv) output."""


def crop_upsampled(y: jax.Array, size: tuple[int, int], left: int) -> jax.Array:
    """Keep rows ``[0, h)`` and columns ``[left, left + w)`` of a transposed conv output."""
    h, w = size
    return y[:, :h, left : left + w]


class GatedResnet(nn.Module):
    """Gated residual block; ``shift`` is ``'down'`` (u stream) or ``'down_right'`` (ul)."""

    shift: str
    dropout_p: float = 0.5
    use_weight_norm: bool = True

    @nn.compact
    def __call__(self, x, skip=None, h=None, *, train=False, data_init=False):
        filters = x.shape[-1]
        conv = down_shifted_conv if self.shift == "down" else down_right_shifted_conv
        wn = {"use_weight_norm": self.use_weight_norm}
        c1 = conv(filters, name="conv_in", **wn)(concat_elu(x), data_init=data_init)
        if skip is not None:
            nin = WeightNormConv(filters, (1, 1), name="skip", **wn)
            c1 = c1 + nin(concat_elu(skip), data_init=data_init)
        c1 = nn.Dropout(self.dropout_p, deterministic=not train)(concat_elu(c1))
        c2 = conv(2 * filters, init_scale=0.1, name="conv_out", **wn)(c1, data_init=data_init)
        if h is not None:
            proj = nn.Dense(
                2 * filters, use_bias=False, kernel_init=nn.initializers.normal(0.05),
                name="cond",
            )
            c2 = c2 + proj(h)[:, None, None, :]
        return gate(x, c2)


def concrete_values(x) -> np.ndarray | None:
    """``x`` as a NumPy array when its values are known now, ``None`` when it is traced
    (inside ``jax.jit``, ``vmap``, ``grad``), where values cannot be checked."""
    return None if isinstance(x, jax.core.Tracer) else np.asarray(x)


def one_hot_labels(cond, cond_shape: CondShape, name: str):
    """Integer class labels as one-hot vectors when ``cond_shape == (num_classes,)``.

    Any integer ``cond`` is read as labels, of any batch shape: ``labels (...,)`` ->
    ``one_hot (..., num_classes)`` (pass one-hot vectors as floats). Labels outside
    ``[0, num_classes)`` are an error when their values are known (eager calls); under
    ``jit`` they cannot be checked and give an all-zero vector. Other ``cond`` (floats,
    ``None``, or any ``cond`` of a model with another ``cond_shape``) is returned as it is,
    for :func:`jflows.conditioning.check_cond` to judge.
    """
    if cond is None or cond_shape is None or len(cond_shape) != 1:
        return cond
    cond = jnp.asarray(cond)
    if not jnp.issubdtype(cond.dtype, jnp.integer):
        return cond
    num_classes = cond_shape[0]
    labels = concrete_values(cond)
    if labels is not None and labels.size and not (
            labels.min() >= 0 and labels.max() < num_classes):
        raise ValueError(f"{name}: class labels must be in [0, {num_classes}), got values "
                         f"from {labels.min()} to {labels.max()}.")
    return jax.nn.one_hot(cond, num_classes)


def conditioning_vector(cond, cond_shape: CondShape, batch: int, dtype, name: str):
    """``cond`` as a ``(batch, prod(cond_shape))`` matrix of ``dtype``, or ``None`` for an
    unconditional model.

    ``cond`` has shape ``cond_batch + cond_shape`` with ``cond_batch`` broadcasting to
    ``(batch,)`` (checked by :func:`jflows.conditioning.check_cond`), or is integer class
    labels when ``cond_shape == (num_classes,)`` (:func:`one_hot_labels`).
    """
    cond = check_cond(one_hot_labels(cond, cond_shape, name), cond_shape, (batch,), name)
    if cond is None:
        return None
    if cond_batch_shape(cond, cond_shape, (batch,), name) != (batch,):
        raise ValueError(f"{name}: the network maps one batch of {batch} images; cond's "
                         f"batch shape must broadcast to ({batch},), got cond of shape "
                         f"{tuple(cond.shape)}.")
    return jnp.broadcast_to(cond, (batch, *cond_shape)).reshape(batch, -1).astype(dtype)


class PixelCNNNetwork(nn.Module):
    """PixelCNN++: images ``(B, H, W, C)`` in ``[0, 255]`` -> mixture params ``(B, H, W, P)``.

    See the module docstring for the architecture. ``cond``: ``(B,) + cond_shape`` (or a
    batch shape broadcasting to ``(B,)``), or integer class labels when ``cond_shape =
    (num_classes,)`` (see :func:`conditioning_vector`).
    """

    image_shape: tuple[int, int, int]
    cond_shape: tuple[int, ...] | None = None
    num_resnet: int = 5
    num_hierarchies: int = 3
    num_filters: int = 160
    num_logistic_mix: int = 10
    dropout_p: float = 0.5
    use_weight_norm: bool = True

    @nn.compact
    def __call__(self, images, cond=None, *, train: bool = False, data_init: bool = False):
        image_shape = tuple(self.image_shape)
        if images.ndim != 4 or tuple(images.shape[1:]) != image_shape:
            raise ValueError(f"PixelCNNNetwork: expected images of shape (batch, *{image_shape})"
                             f", got {tuple(images.shape)}.")
        if self.num_hierarchies < 1 or self.num_resnet < 0:
            raise ValueError(f"PixelCNNNetwork: need num_hierarchies >= 1 and num_resnet >= 0, "
                             f"got {self.num_hierarchies} and {self.num_resnet}.")
        x = network_input(images)
        h = conditioning_vector(cond, self.cond_shape, images.shape[0], x.dtype,
                                "PixelCNNNetwork")
        f, di = self.num_filters, {"data_init": data_init}
        wn = {"use_weight_norm": self.use_weight_norm}
        block = {"dropout_p": self.dropout_p, "use_weight_norm": self.use_weight_norm}
        run = {"train": train, "data_init": data_init}
        levels, top = range(self.num_hierarchies), self.num_hierarchies - 1

        def blocks(down, level):
            return range(num_blocks(down, level, self.num_resnet, self.num_hierarchies))

        # Up pass: stream u sees the rows above, stream ul also the pixels to the left.
        u = down_shift(down_shifted_conv(f, (2, 3), name="in_u", **wn)(x, **di))
        ul = down_shift(down_shifted_conv(f, (1, 3), name="in_ul_above", **wn)(x, **di))
        ul = ul + right_shift(
            down_right_shifted_conv(f, (2, 1), name="in_ul_left", **wn)(x, **di))
        us, uls = [u], [ul]
        for level in levels:
            if level > 0:
                u = down_shifted_conv(
                    f, strides=(2, 2), name=f"downsample_{level}_u", **wn)(u, **di)
                ul = down_right_shifted_conv(
                    f, strides=(2, 2), name=f"downsample_{level}_ul", **wn)(ul, **di)
                us.append(u)
                uls.append(ul)
            for i in blocks(False, level):
                u = GatedResnet("down", name=block_name(False, level, i, "u"), **block)(
                    u, None, h, **run)
                ul = GatedResnet("down_right", name=block_name(False, level, i, "ul"), **block)(
                    ul, u, h, **run)
                us.append(u)
                uls.append(ul)

        # Down pass: upsample and consume every up-pass activation as a skip input.
        u, ul = us.pop(), uls.pop()
        for level in reversed(levels):
            if level < top:
                size = us[-1].shape[1:3]
                u = WeightNormConv(f, (2, 3), (2, 2), transpose=True, name=f"upsample_{level}_u",
                                   **wn)(u, **di)
                u = crop_upsampled(u, size, UPSAMPLE_LEFT["u"])
                ul = WeightNormConv(f, (2, 2), (2, 2), transpose=True,
                                    name=f"upsample_{level}_ul", **wn)(ul, **di)
                ul = crop_upsampled(ul, size, UPSAMPLE_LEFT["ul"])
            for i in blocks(True, level):
                u = GatedResnet("down", name=block_name(True, level, i, "u"), **block)(
                    u, us.pop(), h, **run)
                ul = GatedResnet("down_right", name=block_name(True, level, i, "ul"), **block)(
                    ul, jnp.concatenate([u, uls.pop()], axis=-1), h, **run)
        assert not us and not uls, "every up-pass activation is consumed once"

        out = num_params(image_shape[-1], self.num_logistic_mix)
        return WeightNormConv(out, (1, 1), name="out", **wn)(jax.nn.elu(ul), **di)
