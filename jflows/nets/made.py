"""MADE: a masked MLP whose outputs are autoregressive in its inputs (Germain et al. 2015).

Degrees and masks (Germain et al. 2015, Sec. 4; Papamakarios et al. 2017, Sec. 3):

* every input dimension ``j`` gets a degree ``d_j`` in ``1..D``, its position in the
  autoregressive order (``input_order``);
* every hidden unit ``h`` of layer ``l`` gets a degree ``m_l(h)`` in ``1..D-1``: the
  largest input degree it may depend on (``hidden_degrees``);
* a hidden weight ``prev -> h`` is kept iff ``m_{l-1}(prev) <= m_l(h)`` (with
  ``m_0 = d``), an output weight ``h -> i`` iff ``m_L(h) < d_i``.

Then output ``i`` depends only on inputs ``j`` with ``d_j < d_i``: the Jacobian of the
outputs with respect to the inputs is strictly lower triangular once both are sorted by
degree. An optional conditioning input ``cond``, a vector of ``C`` features per event
(``cond_shape=(C,)``, see :mod:`jflows.conditioning`), feeds every hidden layer *and* the
output layer through unmasked weights (feeding the output layer too lets the first
dimension's conditional depend on ``cond``, which it otherwise could not).

The network computes, with ``W * M`` the elementwise-masked weights::

    h_0 = x
    h_l = act(h_{l-1} @ (W_l * M_l) + b_l + cond @ C_l),     l = 1..L
    out = h_L @ (W_o * M_o) + b_o + cond @ C_o               -> shape (..., D, K)

``out[..., i, :]`` are the ``K = params_per_dim`` parameters of dimension ``i`` (in the
natural index of ``x``, whatever the order). By default (``evaluation='blocked'``) these
products are computed degree-blocked, each layer as a few matmuls against the static
prefix of the layer below it may read, in about half the FLOPs
(:mod:`jflows.nets.made_blocked`); ``evaluation='dense'`` computes them as written. Both
use the same params, one dict per layer::

    {'hidden_0': {'kernel': (D, H_1), 'bias': (H_1,), ['cond_kernel': (C, H_1)]},
     ...
     'output':   {'kernel': (H_L, D, K), 'bias': (D, K), ['cond_kernel': (C, D, K)]}}

The degrees and masks are static NumPy arrays (``MADE.degrees``, ``MADE.masks``), never
parameters, so code that evaluates a MADE incrementally can reuse them with these params.
The output kernel is initialised at ``output_init_scale`` times a LeCun-normal draw and
the output bias at 0, so an affine flow built on a fresh MADE starts near the identity.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jflows.conditioning import CondShape, check_cond, normalize_cond_shape
from jflows.nets.activations import resolve_activation
from jflows.nets.made_blocked import LayerLayout, blocked_apply, blocked_layout

INPUT_ORDERS = ("natural", "reversed", "random")
HIDDEN_DEGREES = ("equal", "random")
EVALUATIONS = ("blocked", "dense")


class MadeDegrees(NamedTuple):
    """Degrees of a MADE: ``inputs`` (D,) in ``1..D``; ``hidden``, one (H_l,) array per
    hidden layer, in ``1..D-1`` (all 0 when ``D == 1``)."""

    inputs: np.ndarray
    hidden: tuple[np.ndarray, ...]


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _validated_order(event_size: int, input_order) -> str | tuple[int, ...]:
    if isinstance(input_order, str):
        if input_order not in INPUT_ORDERS:
            raise ValueError(
                f"MADE: input_order must be one of {INPUT_ORDERS} or a permutation of "
                f"0..{event_size - 1}, got {input_order!r}."
            )
        return input_order
    order = tuple(int(i) for i in np.asarray(input_order).reshape(-1))
    if sorted(order) != list(range(event_size)):
        raise ValueError(
            f"MADE: an explicit input_order must be a permutation of 0..{event_size - 1} "
            f"(the dimensions in the order they are generated), got {list(order)}."
        )
    return order


@functools.lru_cache(maxsize=256)
def _cached_degrees(event_size, hidden_sizes, input_order, hidden_degrees, seed) -> MadeDegrees:
    rng = np.random.default_rng(seed)
    if input_order == "natural":
        order = np.arange(event_size)
    elif input_order == "reversed":
        order = np.arange(event_size)[::-1]
    elif input_order == "random":
        order = rng.permutation(event_size)
    else:
        order = np.asarray(input_order)
    inputs = np.empty(event_size, np.int32)
    inputs[order] = np.arange(1, event_size + 1)
    hidden, lowest = [], 1
    for size in hidden_sizes:
        if event_size == 1:
            degrees = np.zeros(size, np.int32)
        elif hidden_degrees == "equal":
            degrees = 1 + (np.arange(size) * (event_size - 1)) // size
        else:
            degrees = rng.integers(min(lowest, event_size - 1), event_size, size=size)
        degrees = degrees.astype(np.int32)
        lowest = int(degrees.min())
        hidden.append(_frozen(degrees))
    return MadeDegrees(_frozen(inputs), tuple(hidden))


def made_degrees(
    event_size: int,
    hidden_sizes: Sequence[int],
    input_order: str | Sequence[int] = "natural",
    hidden_degrees: str = "equal",
    seed: int = 0,
) -> MadeDegrees:
    """The degrees of a MADE (read-only arrays; cached).

    Args:
      event_size: ``D``.
      hidden_sizes: units of each hidden layer.
      input_order: ``'natural'`` (dimension 0 first), ``'reversed'``, ``'random'`` (a
        permutation drawn from ``seed``), or an explicit permutation listing the
        dimensions **in the order they are generated**: ``input_order[k]`` gets degree
        ``k + 1``. (TFP's ``AutoregressiveNetwork`` takes the degrees themselves; its
        ``input_order=d`` equals jflows' ``input_order=np.argsort(d)``.)
      hidden_degrees: ``'equal'``: the degrees ``1..D-1`` spread over the units as evenly
        as possible (block sizes differ by at most one, sorted), the same multiset as the
        MAF reference code's ``arange(H) % (D-1) + 1`` when ``H >= D-1``; ``'random'``:
        uniform on ``[min degree of the previous layer, D-1]`` as in that code, so no unit
        is left without inputs.
      seed: NumPy seed of the random choices.
    """
    hidden_sizes = tuple(int(h) for h in hidden_sizes)
    if event_size < 1 or any(h < 1 for h in hidden_sizes):
        raise ValueError(
            f"MADE: event_size and hidden sizes must be >= 1, got event_size={event_size}, "
            f"hidden_sizes={hidden_sizes}."
        )
    if hidden_degrees not in HIDDEN_DEGREES:
        raise ValueError(
            f"MADE: hidden_degrees must be one of {HIDDEN_DEGREES}, got {hidden_degrees!r}."
        )
    order = _validated_order(event_size, input_order)
    return _cached_degrees(int(event_size), hidden_sizes, order, hidden_degrees, int(seed))


def made_masks(degrees: MadeDegrees) -> tuple[np.ndarray, ...]:
    """The 0/1 masks ``M_1 .. M_L, M_o`` of the hidden layers and the output layer.

    ``M_l[a, b] = m_{l-1}(a) <= m_l(b)`` (shape ``(H_{l-1}, H_l)``) and
    ``M_o[a, i] = m_L(a) < d_i`` (shape ``(H_L, D)``), with ``m_0 = d``.
    """
    previous, masks = degrees.inputs, []
    for current in degrees.hidden:
        masks.append(_frozen((previous[:, None] <= current[None, :]).astype(np.float32)))
        previous = current
    masks.append(_frozen((previous[:, None] < degrees.inputs[None, :]).astype(np.float32)))
    return tuple(masks)


def _vector_cond_shape(cond_shape) -> CondShape:
    """``cond_shape`` normalised; a MADE's cond is a vector, so only ``(C,)`` is allowed."""
    cond_shape = normalize_cond_shape(cond_shape, "MADE")
    if cond_shape is not None and len(cond_shape) != 1:
        raise ValueError(
            f"MADE: cond must be a vector of features, cond_shape=(C,); got cond_shape="
            f"{cond_shape}. Flatten the conditioning input (cond.reshape(*batch_shape, -1)) "
            f"and use cond_shape=({int(np.prod(cond_shape))},)."
        )
    return cond_shape


def _layer_init(fan_in, shape, cond_shape, kernel_scale, dtype):
    """An initializer of one layer's params dict (kernel, bias, optional cond_kernel)."""
    lecun = nn.initializers.lecun_normal()

    def init(key):
        k_kernel, k_cond = jax.random.split(key)
        kernel = kernel_scale * lecun(k_kernel, (fan_in, *shape), dtype)
        params = {"kernel": kernel, "bias": jnp.zeros(shape, dtype)}
        if cond_shape is not None:
            params["cond_kernel"] = kernel_scale * lecun(k_cond, (*cond_shape, *shape), dtype)
        return params

    return init


class MADE(nn.Module):
    """Masked autoregressive MLP; see the module docstring for the math and params layout.

    Attributes:
      event_size: ``D``, the size of the last axis of ``x``.
      hidden_sizes: units of each hidden layer (any depth, ``()`` for none).
      params_per_dim: ``K``, outputs per dimension (2 for an affine MAF: shift, log-scale).
      input_order: ``'natural'``, ``'reversed'``, ``'random'`` or an explicit
        permutation (the dimensions in generation order); see :func:`made_degrees`.
      hidden_degrees: ``'equal'`` or ``'random'``; see :func:`made_degrees`.
      activation: a name from :data:`jflows.nets.activations.ACTIVATIONS` or a function.
      cond_shape: ``(C,)`` for a conditioning vector of ``C`` features (an int ``C`` is
        read as ``(C,)``), or ``None`` for an unconditional MADE.
      seed: NumPy seed of the random order / degrees (static configuration).
      output_init_scale: scale of the output kernel's initial draw.
      evaluation: how ``__call__`` computes the products: ``'blocked'`` (default) by
        degree-blocked matmuls against static prefixes, about half the FLOPs
        (:mod:`jflows.nets.made_blocked`); ``'dense'`` by the dense masked products of
        the module docstring (the reference). Same params, same outputs to rounding.
      blocked_groups: ``G``, the groups every layer is cut into by the blocked evaluation;
        ``None`` (default): the measured choice per layer width
        (:func:`jflows.nets.made_blocked.default_groups`).

    ``__call__(x, cond=None)`` maps ``(..., D)`` (and ``cond`` of shape ``(..., C)``, its
    batch shape broadcasting with ``x``'s) to ``(..., D, K)``. Params are created in
    ``x``'s floating dtype.
    """

    event_size: int
    hidden_sizes: Sequence[int] = (100, 100)
    params_per_dim: int = 2
    input_order: str | Sequence[int] = "natural"
    hidden_degrees: str = "equal"
    activation: str | Callable = "tanh"
    cond_shape: tuple[int] | None = None
    seed: int = 0
    output_init_scale: float = 1e-2
    evaluation: str = "blocked"
    blocked_groups: int | None = None

    def __post_init__(self):
        # Normalise sequences to tuples so the module stays hashable (static config).
        object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in self.hidden_sizes))
        object.__setattr__(
            self, "input_order", _validated_order(self.event_size, self.input_order)
        )
        made_degrees(self.event_size, self.hidden_sizes, self.input_order,
                     self.hidden_degrees, self.seed)
        resolve_activation(self.activation)
        if self.params_per_dim < 1:
            raise ValueError(f"MADE: params_per_dim must be >= 1, got {self.params_per_dim}.")
        object.__setattr__(self, "cond_shape", _vector_cond_shape(self.cond_shape))
        if self.evaluation not in EVALUATIONS:
            raise ValueError(
                f"MADE: evaluation must be one of {EVALUATIONS}, got {self.evaluation!r}."
            )
        if self.blocked_groups is not None and self.blocked_groups < 1:
            raise ValueError(
                f"MADE: blocked_groups must be >= 1 or None, got {self.blocked_groups}."
            )
        super().__post_init__()

    @property
    def degrees(self) -> MadeDegrees:
        """The static degrees (:class:`MadeDegrees`)."""
        return made_degrees(self.event_size, self.hidden_sizes, self.input_order,
                            self.hidden_degrees, self.seed)

    @property
    def masks(self) -> tuple[np.ndarray, ...]:
        """The static masks ``M_1 .. M_L, M_o`` (see :func:`made_masks`)."""
        return made_masks(self.degrees)

    @property
    def generation_order(self) -> np.ndarray:
        """The dimensions in the order they are generated (sorted by input degree)."""
        return np.argsort(self.degrees.inputs)

    @property
    def activation_fn(self) -> Callable[[jax.Array], jax.Array]:
        return resolve_activation(self.activation)

    def check_inputs(self, x, cond, name: str = "MADE"):
        """``cond`` checked by :func:`jflows.conditioning.check_cond` (``None`` for an
        unconditional MADE); raise a ValueError naming the shapes when ``x`` (an array or a
        :class:`jax.ShapeDtypeStruct`) has not ``event_size`` on its last axis."""
        shape = tuple(x.shape)
        if not shape or shape[-1] != self.event_size:
            raise ValueError(
                f"{name}: expected inputs with last axis of size {self.event_size} (the "
                f"MADE's event_size), got shape {shape}."
            )
        return check_cond(cond, self.cond_shape, shape[:-1], name)

    @property
    def blocked_layout(self) -> tuple[LayerLayout, ...]:
        """The static layout of the degree-blocked evaluation (see
        :mod:`jflows.nets.made_blocked`; cached)."""
        return _cached_layout(self.event_size, self.hidden_sizes, self.input_order,
                              self.hidden_degrees, self.seed, self.params_per_dim,
                              self.blocked_groups)

    @nn.compact
    def __call__(self, x, cond=None):
        cond = self.check_inputs(x, cond)
        dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
        sizes = (self.event_size, *self.hidden_sizes)
        params = {
            f"hidden_{index}": self.param(
                f"hidden_{index}", _layer_init(sizes[index], (size,), self.cond_shape, 1.0, dtype)
            )
            for index, size in enumerate(self.hidden_sizes)
        }
        params["output"] = self.param(
            "output",
            _layer_init(sizes[-1], (self.event_size, self.params_per_dim), self.cond_shape,
                        self.output_init_scale, dtype),
        )
        if self.evaluation == "dense":
            return dense_apply(self.masks, params, x, cond, self.activation_fn)
        return blocked_apply(self.blocked_layout, params, x, cond, self.activation_fn)


@functools.lru_cache(maxsize=64)
def _cached_layout(event_size, hidden_sizes, input_order, hidden_degrees, seed, params_per_dim,
                   groups):
    degrees = made_degrees(event_size, hidden_sizes, input_order, hidden_degrees, seed)
    return blocked_layout(degrees.inputs, degrees.hidden, made_masks(degrees), params_per_dim,
                          groups)


def dense_apply(masks, params, x, cond, act) -> jax.Array:
    """The MADE's outputs ``(..., D, K)`` by the dense masked products (the module
    docstring's formula; the reference for the blocked evaluation)."""
    dtype = params["output"]["kernel"].dtype
    h = x
    for index, mask in enumerate(masks[:-1]):
        layer = params[f"hidden_{index}"]
        h = h @ (layer["kernel"] * mask.astype(dtype)) + layer["bias"]
        if cond is not None:
            h = h + cond @ layer["cond_kernel"]
        h = act(h)
    output = params["output"]
    d, k = output["bias"].shape
    kernel = (output["kernel"] * masks[-1][:, :, None].astype(dtype)).reshape(-1, d * k)
    out = h @ kernel + output["bias"].reshape(d * k)
    if cond is not None:
        out = out + cond @ output["cond_kernel"].reshape(-1, d * k)
    return out.reshape(out.shape[:-1] + (d, k))
