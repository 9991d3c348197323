"""Neural spline flows (Durkan et al. 2019): rational-quadratic splines in coupling and
autoregressive layers, as ready-made density models.

Both use :func:`jflows.bijectors.spline.spline_transformer`: per element a monotone
rational-quadratic spline of ``num_bins`` bins on ``[-bound, bound]`` with identity tails,
``K = 3 num_bins - 1`` parameters from the network. With a standard normal base,
``log p(x) = log N(u; 0, I) + sum_l sum_i log|d u_{l,i} / d x_{l,i}|``.

* **NSF-coupling** (:func:`nsf_coupling`, the paper's RQ-NSF (C)): the alternating split
  couplings of :func:`jflows.flows.realnvp.coupling_stack` with the spline transformer;
  one network pass per layer in both directions.
* **NSF-autoregressive** (:func:`nsf_autoregressive`, RQ-NSF (AR)): every layer a MADE
  with ``K`` outputs per dimension under :func:`jflows.bijectors.masked_autoregressive`;
  the density is one pass per layer, sampling solves each layer with the incremental MADE
  evaluation (about one network pass; :mod:`jflows.nets.made_sampling`). The order is
  reversed between layers by the MADE input orders (no data moves), as
  :func:`jflows.flows.maf.maf_bijector`, and layers run in scanned pairs with the params
  layout of :func:`jflows.flows.stack.alternating_stack` (``L = {'made': ...}``).

Both start at the identity: the coupling conditioners' output layers and the MADEs'
output kernels (``output_init_scale=0``) are zero, so every spline is the identity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jflows.bijectors as jb
from jflows.bijectors.spline import spline_transformer
from jflows.distributions import standard_normal, transformed
from jflows.distributions.transformed import TransformedDistribution
from jflows.flows.maf import layer_input_order
from jflows.flows.realnvp import coupling_stack
from jflows.flows.stack import alternating_stack
from jflows.nets.made import MADE


def _spline(num_bins, bound, min_bin_width, min_bin_height, min_derivative):
    return spline_transformer(num_bins, bound, min_bin_width=min_bin_width,
                              min_bin_height=min_bin_height, min_derivative=min_derivative)


def nsf_coupling_bijector(
    event_size: int,
    num_layers: int = 8,
    hidden_sizes: Sequence[int] = (64, 64),
    *,
    num_bins: int = 8,
    bound: float = 3.0,
    min_bin_width: float = 1e-3,
    min_bin_height: float = 1e-3,
    min_derivative: float = 1e-3,
    **kwargs,
) -> jb.Bijector:
    """NSF-coupling stack as one bijector; spline options as
    :func:`jflows.bijectors.spline.spline_transformer`, the others (``activation``,
    ``batch_norm``, ``cond_shape``, ...) as :func:`jflows.flows.realnvp.coupling_stack`."""
    transformer = _spline(num_bins, bound, min_bin_width, min_bin_height, min_derivative)
    return coupling_stack(event_size, num_layers, transformer, hidden_sizes, **kwargs)


def nsf_autoregressive_bijector(
    event_size: int,
    num_layers: int = 5,
    hidden_sizes: Sequence[int] = (64, 64),
    *,
    num_bins: int = 8,
    bound: float = 3.0,
    min_bin_width: float = 1e-3,
    min_bin_height: float = 1e-3,
    min_derivative: float = 1e-3,
    activation: str | Callable = "relu",
    cond_shape=None,
    input_order: str | Sequence[int] = "natural",
    output_init_scale: float = 0.0,
    sampling: str = "auto",
    seed: int = 0,
) -> jb.Bijector:
    """NSF-autoregressive stack as one bijector (forward = sampling direction).

    Args:
      event_size: ``D``.
      num_layers: number of MADE-spline layers.
      hidden_sizes, activation, cond_shape, output_init_scale: each MADE's (see
        :class:`jflows.nets.MADE`); ``output_init_scale=0`` starts at the identity.
      num_bins, bound, min_bin_width, min_bin_height, min_derivative: the splines' (see
        :func:`jflows.bijectors.spline.spline_transformer`).
      input_order: layer 0's MADE order (``'natural'``, ``'reversed'`` or a permutation),
        reversed on every odd layer.
      sampling: ``"auto"`` (incremental MADE solve) or ``"passes"``; see
        :func:`jflows.bijectors.masked_autoregressive`.
      seed: the MADEs' seed (static; layer ``l`` uses ``seed + l``).
    """
    if isinstance(input_order, str) and input_order == "random":
        raise ValueError("nsf_autoregressive_bijector: input_order='random' would give "
                         "every layer its own masks; the scanned layout needs a fixed "
                         "order (use maf_bijector's unrolled stack for random orders).")
    transformer = _spline(num_bins, bound, min_bin_width, min_bin_height, min_derivative)

    def layer(index):
        made = MADE(event_size, hidden_sizes, params_per_dim=transformer.params_per_dim,
                    input_order=layer_input_order(input_order, index), activation=activation,
                    cond_shape=cond_shape, seed=seed + index,
                    output_init_scale=output_init_scale)
        return jb.chain(made=jb.masked_autoregressive(made, transformer=transformer,
                                                      sampling=sampling))

    return alternating_stack(layer, num_layers)


def nsf_coupling(event_size: int, num_layers: int = 8, hidden_sizes: Sequence[int] = (64, 64),
                 **kwargs) -> TransformedDistribution:
    """NSF-coupling with a standard normal base; options as :func:`nsf_coupling_bijector`."""
    return transformed(standard_normal((event_size,)),
                       nsf_coupling_bijector(event_size, num_layers, hidden_sizes, **kwargs))


def nsf_autoregressive(event_size: int, num_layers: int = 5,
                       hidden_sizes: Sequence[int] = (64, 64), **kwargs
                       ) -> TransformedDistribution:
    """NSF-autoregressive with a standard normal base; options as
    :func:`nsf_autoregressive_bijector`."""
    return transformed(standard_normal((event_size,)),
                       nsf_autoregressive_bijector(event_size, num_layers, hidden_sizes,
                                                   **kwargs))
