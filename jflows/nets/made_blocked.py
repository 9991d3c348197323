"""Degree-blocked evaluation of a MADE: each layer as a few matmuls against static prefixes.

A MADE's masked weights (see :mod:`jflows.nets.made`) are block triangular once the units
of every layer are sorted by degree: hidden unit ``b`` reads the units ``a`` of the layer
below with ``m(a) <= m(b)``, output ``i`` the last hidden units with ``m(a) < d_i``. So if
a layer's (degree-sorted) units are cut into ``G`` contiguous groups, group ``g`` reads
only the units of the layer below whose degree is at most the largest degree it allows,
a contiguous range of that layer's sorted units (a prefix; for inputs in reversed order,
a suffix). Each layer is then ``G`` products against those static ranges,

    h_l[:, group g] = act(h_{l-1}[:, read_g] @ (W_l * M_l)[read_g, group g] + b_l[group g]
                          + cond @ C_l[:, group g])

(the output layer likewise, without ``act``). With ``H`` units per layer and degrees
spread evenly, group ``g`` reads about ``(g + 1) / G`` of the layer below, so a layer
costs about ``(G + 1) / (2 G)`` of the dense masked product, forward and (by autodiff)
backward. The masks no longer multiply anything data-sized: each block is multiplied by
its static mask slice only when that slice has zeros (the diagonal blocks), once per call,
on weights only. The conditioning products ``cond @ C_l`` stay dense (cond feeds every
unit).

Arrangement: a layer whose degrees are monotone (``hidden_degrees='equal'``; the inputs
in the natural or reversed order) is read in place. Otherwise its units are sorted by
degree, once per call, by permuting the weights: the columns of its own kernel, bias and
cond kernel and the rows of the next layer's kernel. Only the inputs of a MADE whose input
order is neither natural nor reversed are permuted as data (one ``D``-wide gather of ``x``
in, one of the outputs out, against the ``O(N D H)`` products).

Group boundaries snap to the degree boundaries nearest to an equal split (a degree's units
are never split, so a layer has at most as many groups as degrees), and ``G`` per layer
comes from :func:`default_groups`, chosen by measurement (``benchmarks/made_blocked.py``).
The FLOP count is not the time: on XLA:CPU each slice feeding a product, the concatenation
of the groups and (in training) the padding of every block's kernel gradient back into the
full kernel are extra memory passes, so the measured gain is well below ``(G + 1) / (2 G)``
(about 0.88x the dense time at H = 512, G = 4) and narrow layers keep one block.

The incremental sampler (:mod:`jflows.nets.made_sampling`) uses the same degree sort and
prefix counts (:func:`degree_sort`, :func:`units_below`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# Groups per layer by the layer's number of units (columns of its kernel: H for a hidden
# layer, D K for the output layer): (smallest number of units, G), the last row whose
# threshold is reached applies. Measured on a shared 2-core CPU with
# `python -m benchmarks.made_blocked groups` (BENCHMARKS.md): at H = 100 every G > 1 was
# slower than one block (the slices and the concatenation cost more than the skipped
# products); at H = 512 G = 4 was best (0.88x the dense time, density and gradient), G = 8
# no better, G = 16 slower.
GROUPS_BY_UNITS = ((0, 1), (256, 4))


def default_groups(units: int) -> int:
    """The measured number of groups ``G`` for a layer of ``units`` outputs."""
    return [g for threshold, g in GROUPS_BY_UNITS if units >= threshold][-1]


def degree_sort(degrees: np.ndarray) -> np.ndarray:
    """The (stable) permutation that sorts a layer's units by degree."""
    return np.argsort(degrees, kind="stable")


def units_below(sorted_degrees: np.ndarray, degree):
    """How many of a layer's degree-sorted units have degree ``< degree`` (a prefix)."""
    return np.searchsorted(sorted_degrees, degree, side="left")


def _arrangement(degrees: np.ndarray) -> np.ndarray | None:
    """``None`` when the degrees are monotone (read in place), else :func:`degree_sort`."""
    steps = np.diff(degrees)
    if np.all(steps >= 0) or np.all(steps <= 0):
        return None
    return degree_sort(degrees)


def _arranged(a: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    return a if order is None else a[order]


def _cuts(degrees: np.ndarray, groups: int) -> np.ndarray:
    """Boundaries of ``<= groups`` contiguous groups of (monotone) ``degrees``, each at a
    degree boundary nearest to an equal split."""
    size = len(degrees)
    candidates = np.concatenate([[0], np.flatnonzero(np.diff(degrees)) + 1, [size]])
    targets = np.linspace(0, size, max(1, min(groups, size)) + 1)
    nearest = candidates[np.abs(candidates[None, :] - targets[:, None]).argmin(axis=1)]
    return np.unique(np.concatenate([[0], nearest, [size]]))


class Block(NamedTuple):
    """One product: columns ``cols`` of a layer read rows ``rows`` of the layer below
    (ranges in arranged units); ``mask`` is the mask on that block, ``None`` when all ones."""

    rows: tuple[int, int]
    cols: tuple[int, int]
    mask: np.ndarray | None


class LayerLayout(NamedTuple):
    """Static layout of one layer: the arrangement of the units below (``rows``) and of
    its own units (``cols``), ``None`` when in place, and its blocks."""

    rows: np.ndarray | None
    cols: np.ndarray | None
    blocks: tuple[Block, ...]


def _read_range(mask: np.ndarray) -> tuple[int, int]:
    """The contiguous range of rows that a block's columns read (any nonzero mask entry)."""
    read = np.flatnonzero(mask.any(axis=1))
    if read.size == 0:
        return (0, 0)
    lo, hi = int(read[0]), int(read[-1]) + 1
    if hi - lo != read.size:  # cannot happen for arranged MADE degrees
        raise ValueError(f"made_blocked: rows read by a block are not contiguous: {read}.")
    return lo, hi


def _layer_layout(rows: np.ndarray | None, degrees: np.ndarray, mask: np.ndarray,
                  groups: int) -> LayerLayout:
    cols = _arrangement(degrees)
    mask = _arranged(_arranged(mask, rows).T, cols).T
    cuts = _cuts(_arranged(degrees, cols), groups)
    blocks = []
    for c0, c1 in zip(cuts[:-1], cuts[1:], strict=True):
        r0, r1 = _read_range(mask[:, c0:c1])
        block_mask = mask[r0:r1, c0:c1]
        blocks.append(Block((r0, r1), (int(c0), int(c1)),
                            None if block_mask.all() else block_mask))
    return LayerLayout(rows, cols, tuple(blocks))


def blocked_layout(input_degrees: np.ndarray, hidden_degrees: Sequence[np.ndarray],
                   masks: Sequence[np.ndarray], params_per_dim: int,
                   groups: int | None = None) -> tuple[LayerLayout, ...]:
    """The static layout of every hidden layer and of the output layer (last).

    ``masks`` are :func:`jflows.nets.made.made_masks` of these degrees; ``groups`` fixes
    ``G`` for every layer (``None``: :func:`default_groups` of each layer's units).
    """
    if groups is not None and groups < 1:
        raise ValueError(f"made_blocked: groups must be >= 1 or None, got {groups}.")
    layouts, rows = [], _arrangement(input_degrees)
    for degrees, mask in zip(hidden_degrees, masks[:-1], strict=True):
        layouts.append(_layer_layout(rows, degrees, mask,
                                     groups or default_groups(len(degrees))))
        rows = layouts[-1].cols
    d = len(input_degrees)
    output_groups = groups or default_groups(d * params_per_dim)
    layouts.append(_layer_layout(rows, input_degrees, masks[-1], output_groups))
    return tuple(layouts)


def _take(a: jax.Array, order: np.ndarray | None, axis: int) -> jax.Array:
    return a if order is None else jnp.take(a, order, axis=axis, unique_indices=True)


def _blocks_product(h: jax.Array, kernel: jax.Array, layout: LayerLayout) -> jax.Array:
    """``h @ (W * M)`` over the arranged units, one product per block; ``kernel`` is
    ``(rows, cols, ...)`` (trailing axes flattened into the columns)."""
    kernel = _take(_take(kernel, layout.rows, 0), layout.cols, 1)
    pieces = []
    for block in layout.blocks:
        (r0, r1), (c0, c1) = block.rows, block.cols
        w = kernel[r0:r1, c0:c1]
        if block.mask is not None:
            w = w * block.mask.reshape(block.mask.shape + (1,) * (w.ndim - 2)).astype(w.dtype)
        pieces.append(h[..., r0:r1] @ w.reshape(r1 - r0, int(np.prod(w.shape[1:]))))
    return pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces, axis=-1)


def _affine(h, p, layout: LayerLayout, cond):
    """One layer's pre-activation over its arranged units, shape ``h.shape[:-1] + (units *
    trailing,)``: the blocked product, the bias and the dense cond term."""
    out = _blocks_product(h, p["kernel"], layout) + _take(p["bias"], layout.cols, 0).reshape(-1)
    if cond is not None:
        cond_kernel = _take(p["cond_kernel"], layout.cols, 1)
        out = out + cond @ cond_kernel.reshape(cond_kernel.shape[0], -1)
    return out


def blocked_apply(layouts: Sequence[LayerLayout], params, x: jax.Array,
                  cond: jax.Array | None, act: Callable[[jax.Array], jax.Array]) -> jax.Array:
    """The MADE's outputs ``(..., D, K)`` (natural dimension order) from its params
    (:mod:`jflows.nets.made`'s layout) by the blocked products of ``layouts``."""
    h = _take(x, layouts[0].rows, -1)
    for index, layout in enumerate(layouts[:-1]):
        h = act(_affine(h, params[f"hidden_{index}"], layout, cond))
    output = params["output"]
    d, k = output["bias"].shape
    out = _affine(h, output, layouts[-1], cond)
    out = out.reshape(out.shape[:-1] + (d, k))
    cols = layouts[-1].cols
    return out if cols is None else _take(out, np.argsort(cols), -2)
