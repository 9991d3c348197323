"""Cached PixelCNN++ sampling: one pixel's computation per step, not one image's.

Fast generation for convolutional autoregressive models (Ramachandran, Le Paine, Khorrami,
Babaeizadeh, Chang, Zhang, Hasegawa-Johnson, Campbell, Huang 2017): every shifted
convolution of :class:`~jflows.nets.pixelcnnpp.PixelCNNNetwork` reads a ``kh x kw`` window
of its input ending at the current row, so keeping the last ``kh = 2`` rows of each
convolution's input (its *cache*) is enough to compute the layer's output at a new position
from that position's new input alone. :func:`sample_cached` runs a ``lax.scan`` over rows and,
inside it, over the pixels of a row (raster order), carrying these caches; the weights are
the network's own params pytree (weight norm ``g V / ||V||`` applied once, before the loop).

Schedule (per resolution, as in the paper). Level ``k`` has ``ceil(n / 2^k)`` rows and
columns; its position ``(i, j)`` is first computable at full-resolution pixel
``(2^k i, 2^k j)``, because the stride-2 shifted convolutions read level ``k - 1`` at rows
``2i - 1 .. 2i`` and columns up to ``2j`` (``ul``) or ``2j + 1`` (``u``).

* The ``u`` stream (down-shifted convolutions: rows strictly above) depends on complete rows
  only, so it is computed a row at a time at the start of each image row ``r``: for every
  level ``k`` with ``2^k | r`` its row ``r / 2^k`` (up pass, then down pass). The
  transposed convolutions (kernel height = stride = 2) map one coarse row to two fine rows
  without overlap, so a fine row is the network's own transposed convolution of one coarse
  row, cropped as the network crops.
* The ``ul`` stream (down-right-shifted convolutions) is computed pixel by pixel: at pixel
  ``(r, c)`` every level ``k`` with ``2^k | r`` and ``2^k | c`` gets its position
  ``(r / 2^k, c / 2^k)`` (``lax.switch`` over that depth: coarser levels update only when
  their inputs are complete). Its up-pass blocks take the ``u`` row's value at the same
  column as skip input, its down-pass blocks the down-pass ``u`` row and the up-pass ``ul``
  activation; upsampling reads the coarse level's latest value at ``(i // 2, j // 2)`` and
  the kernel tap of the fine position's parity.
* Then the output layer gives the pixel's mixture parameters; the caller draws the pixel,
  which is written into the (padded) network input that the next steps read.

Every value is the network's, computed with differently shaped but equal operations (a
window dot product instead of a convolution), so a key gives the same images as full
network passes up to float rounding. Dropout is off (evaluation mode). Class conditioning
``W_h h`` is the same at every pixel and is computed once per block.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

import jax
import jax.numpy as jnp

from jflows.nets.pixelcnnpp import (
    UPSAMPLE_LEFT,
    PixelCNNNetwork,
    block_name,
    concat_elu,
    conditioning_vector,
    conv,
    conv_transpose,
    crop_upsampled,
    gate,
    level_sizes,
    network_input,
    num_blocks,
    weight_norm_kernel,
)

State = dict
"""The scan carry: ``x`` (padded network input), ``image``, ``u_cache`` (two-row caches of
the ``u`` convolutions' inputs), ``u_rows`` (the current ``u`` rows the ``ul`` stream and the
upsampling read), ``ul_cache`` (per level: two-row caches of the ``ul`` convolutions'
inputs) and ``ul_coarse`` (per level ``k >= 1``: the current row of its down-pass ``ul``)."""

_TOP, _LEFT = 2, 1  # zero rows above and columns on each side of the cached network input


def effective_weights(params: Mapping) -> dict:
    """The network's params with every weight-normalised kernel as ``g V / ||V||``."""
    if "scale" in params:
        return {"kernel": weight_norm_kernel(params["kernel"], params["scale"]),
                "bias": params["bias"]}
    return {name: effective_weights(p) if isinstance(p, Mapping) else p
            for name, p in params.items()}


def _window(window: jax.Array, layer: Mapping) -> jax.Array:
    """A convolution's output at one position: ``(B, kh, kw, I)`` window -> ``(B, O)``."""
    kernel = layer["kernel"]
    return window.reshape(window.shape[0], -1) @ kernel.reshape(-1, kernel.shape[-1]) \
        + layer["bias"]


def _nin(x: jax.Array, layer: Mapping) -> jax.Array:
    """A 1x1 convolution on the channel axis of ``x (..., I)``."""
    return x @ layer["kernel"][0, 0] + layer["bias"]


def _cache(caches: dict, name: str, shape, dtype) -> jax.Array:
    """``caches[name]``, or zeros (the convolutions' zero padding) the first time."""
    return caches[name] if name in caches else jnp.zeros(shape, dtype)


def _roll(cache: jax.Array) -> jax.Array:
    """A two-row cache at a new row: the current row becomes the row above."""
    return cache.at[:, 0].set(cache[:, 1])


def _index(x: jax.Array, j, axis=1) -> jax.Array:
    return jax.lax.dynamic_index_in_dim(x, j, axis=axis, keepdims=False)


def _gated_block(weights, name, x, skip, cond_term, conv_fn):
    """:class:`~jflows.nets.pixelcnnpp.GatedResnet` at the new positions (dropout off);
    ``conv_fn(cache_name, value, layer)`` caches ``value`` and returns the shifted conv."""
    layer = weights[name]
    c1 = conv_fn(f"{name}/conv_in", concat_elu(x), layer["conv_in"])
    if skip is not None:
        c1 = c1 + _nin(concat_elu(skip), layer["skip"])
    c2 = conv_fn(f"{name}/conv_out", concat_elu(c1), layer["conv_out"])
    if cond_term is not None:
        c2 = c2 + cond_term
    return gate(x, c2)


class _Plan:
    """The network's static shape (levels, block counts, batch, dtype), its weights and
    conditioning terms. ``discover``: descend into every level unconditionally (tracing the
    first pixel, where every level is new, to find the caches' shapes)."""

    def __init__(self, network: PixelCNNNetwork, weights, cond_terms, batch: int, dtype,
                 discover: bool = False):
        self.height, self.width, self.channels = network.image_shape
        self.levels = network.num_hierarchies
        self.num_resnet = network.num_resnet
        self.sizes = level_sizes(self.height, self.width, self.levels)
        self.weights, self.cond_terms = weights, cond_terms
        self.batch, self.dtype, self.discover = batch, dtype, discover

    def blocks(self, down: bool, level: int) -> range:
        return range(num_blocks(down, level, self.num_resnet, self.levels))

    def cond_term(self, name: str):
        return None if self.cond_terms is None else self.cond_terms[name]

    def descend(self, new, level_fn, state: State) -> State:
        """``level_fn(state)`` where the next level has a new position (``new``)."""
        if self.discover:
            return level_fn(state)
        return jax.lax.cond(new, level_fn, lambda s: s, state)


def _u_row(plan: _Plan, state: State, r, level: int = 0) -> State:
    """The ``u`` stream's new row ``r / 2^level`` at ``level`` and, where their rows are new
    too, at the coarser levels (up pass, the coarser levels, down pass); the ``ul`` caches
    of this level move to a new row."""
    weights = plan.weights
    u_cache, u_rows = dict(state["u_cache"]), dict(state["u_rows"])
    ul_cache = {**state["ul_cache"],
                level: {n: _roll(c) for n, c in state["ul_cache"][level].items()}}

    def push(name, row, pad):  # the row's values as the newest row of a two-row cache
        shape = (plan.batch, 2, row.shape[1] + 2 * pad, row.shape[2])
        padded = jnp.pad(row, ((0, 0), (pad, pad), (0, 0)))
        u_cache[name] = jnp.concatenate(
            [_cache(u_cache, name, shape, plan.dtype)[:, 1:], padded[:, None]], axis=1)
        return u_cache[name]

    def conv_row(name, value, layer):  # a down-shifted conv's output row
        strip = push(name, value, (layer["kernel"].shape[1] - 1) // 2)
        return conv(strip, layer["kernel"], layer["bias"])[:, 0]

    def cond_row(name):
        term = plan.cond_term(name)
        return None if term is None else term[:, None]

    if level == 0:
        strip = jax.lax.dynamic_slice_in_dim(state["x"], r, 2, axis=1)  # image rows r-2, r-1
        layer = weights["in_u"]
        u = jnp.where(r > 0, conv(strip, layer["kernel"], layer["bias"])[:, 0], 0.0)
    else:
        layer = weights[f"downsample_{level}_u"]
        u = conv(u_cache[f"downsample_{level}_u"], layer["kernel"], layer["bias"], (2, 2))[:, 0]
    stack = [u]
    for i in plan.blocks(False, level):
        name = block_name(False, level, i, "u")
        u = u_rows[name] = _gated_block(weights, name, u, None, cond_row(name), conv_row)
        stack.append(u)
    if level + 1 == plan.levels:
        u = stack.pop()
    else:
        push(f"downsample_{level + 1}_u", u, 1)
        state = {**state, "u_cache": u_cache, "u_rows": u_rows, "ul_cache": ul_cache}
        state = plan.descend(r % 2 ** (level + 1) == 0,
                             partial(_u_row, plan, r=r, level=level + 1), state)
        u_cache, u_rows, ul_cache = dict(state["u_cache"]), dict(state["u_rows"]), \
            state["ul_cache"]
        layer = weights[f"upsample_{level}_u"]
        pair = conv_transpose(u_rows[f"level_{level + 1}_u"][:, None], layer["kernel"],
                              layer["bias"], (2, 2))
        pair = crop_upsampled(pair, (2, plan.sizes[level][1]), UPSAMPLE_LEFT["u"])
        u = _index(pair, (r // 2**level) % 2)
    for i in plan.blocks(True, level):
        name = block_name(True, level, i, "u")
        u = u_rows[name] = _gated_block(weights, name, u, stack.pop(), cond_row(name),
                                        conv_row)
    if level > 0:
        u_rows[f"level_{level}_u"] = u
    return {**state, "u_cache": u_cache, "u_rows": u_rows, "ul_cache": ul_cache}


def _ul_pixel(plan: _Plan, state: State, r, c, level: int = 0):
    """The ``ul`` stream's new position ``(r, c) / 2^level`` at ``level`` and, where theirs
    are new too, at the coarser levels. Returns the state, and at level 0 also the output
    layer's mixture parameters ``(B, P)`` of pixel ``(r, c)``."""
    weights, batch = plan.weights, plan.batch
    i, j = r // 2**level, c // 2**level
    caches, u_rows = dict(state["ul_cache"][level]), state["u_rows"]

    def conv_pixel(name, value, layer):  # a down-right-shifted conv's output at (i, j)
        kh, kw, channels, _ = layer["kernel"].shape
        shape = (batch, kh, plan.sizes[level][1] + kw - 1, channels)
        cache = jax.lax.dynamic_update_slice(
            _cache(caches, name, shape, plan.dtype), value[:, None, None],
            (0, kh - 1, j + kw - 1, 0))
        caches[name] = cache
        return _window(jax.lax.dynamic_slice(cache, (0, 0, j, 0), (batch, kh, kw, channels)),
                       layer)

    if level == 0:
        x, width = state["x"], state["x"].shape[-1]
        above = jax.lax.dynamic_slice(x, (0, r + _TOP - 1, c, 0), (batch, 1, 3, width))
        left = jax.lax.dynamic_slice(x, (0, r + _TOP - 1, c, 0), (batch, 2, 1, width))
        ul = (jnp.where(r > 0, _window(above, weights["in_ul_above"]), 0.0)
              + jnp.where(c > 0, _window(left, weights["in_ul_left"]), 0.0))
    else:
        name = f"downsample_{level}_ul"
        features = weights[name]["kernel"].shape[2]
        window = jax.lax.dynamic_slice(state["ul_cache"][level - 1][name], (0, 0, 2 * j, 0),
                                       (batch, 2, 2, features))
        ul = _window(window, weights[name])
    stack = [ul]
    for b in plan.blocks(False, level):
        name = block_name(False, level, b, "ul")
        skip = _index(u_rows[block_name(False, level, b, "u")], j)
        ul = _gated_block(weights, name, ul, skip, plan.cond_term(name), conv_pixel)
        stack.append(ul)
    if level + 1 == plan.levels:
        ul = stack.pop()
    else:
        name = f"downsample_{level + 1}_ul"
        shape = (batch, 2, plan.sizes[level][1] + 1, ul.shape[-1])
        caches[name] = jax.lax.dynamic_update_slice(
            _cache(caches, name, shape, plan.dtype), ul[:, None, None], (0, 1, j + 1, 0))
        state = {**state, "ul_cache": {**state["ul_cache"], level: caches}}
        new = (r % 2 ** (level + 1) == 0) & (c % 2 ** (level + 1) == 0)
        state = plan.descend(new, partial(_ul_pixel, plan, r=r, c=c, level=level + 1), state)
        caches = dict(state["ul_cache"][level])
        layer = weights[f"upsample_{level}_ul"]
        coarse = _index(state["ul_coarse"][level + 1], j // 2)
        block = conv_transpose(coarse[:, None, None], layer["kernel"], layer["bias"], (2, 2))
        block = crop_upsampled(block, (2, 2), UPSAMPLE_LEFT["ul"])
        ul = _index(_index(block, i % 2), j % 2)
    for b in plan.blocks(True, level):
        name = block_name(True, level, b, "ul")
        skip = jnp.concatenate([_index(u_rows[block_name(True, level, b, "u")], j),
                                stack.pop()], axis=-1)
        ul = _gated_block(weights, name, ul, skip, plan.cond_term(name), conv_pixel)
    state = {**state, "ul_cache": {**state["ul_cache"], level: caches}}
    if level > 0:
        shape = (batch, plan.sizes[level][1], ul.shape[-1])
        coarse = _cache(state["ul_coarse"], level, shape, plan.dtype)
        return {**state, "ul_coarse": {**state["ul_coarse"],
                                       level: jax.lax.dynamic_update_index_in_dim(
                                           coarse, ul, j, axis=1)}}
    return state, _nin(jax.nn.elu(ul), weights["out"])


def sample_cached(network: PixelCNNNetwork, params, cond, batch: int,
                  draw_pixel: Callable[[jax.Array, jax.Array], jax.Array]) -> jax.Array:
    """Sample ``batch`` images ``(batch, H, W, C)`` (int32) pixel by pixel with cached
    activations.

    ``params``: the network's params (``network.init(...)["params"]``; the network computes
    in their dtype). ``cond``: ``(batch,) + cond_shape`` (or labels, see
    :func:`~jflows.nets.pixelcnnpp.conditioning_vector`), ``None`` for an unconditional
    network. ``draw_pixel(raw, t)``: the pixel ``(batch, C)`` (integers 0..255) drawn from
    the mixture parameters ``raw (batch, P)`` of pixel ``t = r W + c``.
    """
    dtype = jnp.result_type(*jax.tree.leaves(params))
    weights = effective_weights(params)
    h = conditioning_vector(cond, network.cond_shape, batch, dtype, "sample_cached")
    cond_terms = None if h is None else {
        name: h @ layer["cond"]["kernel"] for name, layer in weights.items() if "cond" in layer}
    plan = _Plan(network, weights, cond_terms, batch, dtype)

    def pixel_step(state, c, r):
        state, raw = _ul_pixel(plan, state, r, c)
        pixel = draw_pixel(raw, r * plan.width + c).astype(jnp.int32)
        image = jax.lax.dynamic_update_slice(state["image"], pixel[:, None, None], (0, r, c, 0))
        x = jax.lax.dynamic_update_slice(
            state["x"], network_input(pixel.astype(dtype))[:, None, None],
            (0, r + _TOP, c + _LEFT, 0))
        return {**state, "image": image, "x": x}, None

    def row_step(state, r):
        state = _u_row(plan, state, r)
        state, _ = jax.lax.scan(partial(pixel_step, r=r), state, jnp.arange(plan.width))
        return state, None

    empty = {"x": jnp.zeros((batch, plan.height + _TOP, plan.width + 2 * _LEFT,
                             plan.channels + 1), dtype),
             "image": jnp.zeros((batch, plan.height, plan.width, plan.channels), jnp.int32),
             "u_cache": {}, "u_rows": {}, "ul_cache": {k: {} for k in range(plan.levels)},
             "ul_coarse": {}}
    # Every cache appears at the first pixel, where every level is new: its zeros (the
    # convolutions' padding) are the initial state.
    first = _Plan(network, weights, cond_terms, batch, dtype, discover=True)
    shapes = jax.eval_shape(lambda s: _ul_pixel(first, _u_row(first, s, 0), 0, 0)[0], empty)
    state = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    state, _ = jax.lax.scan(row_step, state, jnp.arange(plan.height))
    return state["image"]
