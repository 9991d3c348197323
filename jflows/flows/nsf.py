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
from jflows.flows.maf import maf_bijector
from jflows.flows.realnvp import coupling_stack


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
    output_init_scale: float = 0.0,
    **kwargs,
) -> jb.Bijector:
    """NSF-autoregressive stack as one bijector (forward = sampling direction): the MAF
    stack of :func:`jflows.flows.maf.maf_bijector` with the spline transformer and no
    batch norm.

    Args:
      event_size: ``D``.
      num_layers: number of MADE-spline layers.
      hidden_sizes, activation, output_init_scale: each MADE's (see
        :class:`jflows.nets.MADE`); ``output_init_scale=0`` starts at the identity.
      num_bins, bound, min_bin_width, min_bin_height, min_derivative: the splines' (see
        :func:`jflows.bijectors.spline.spline_transformer`).
      **kwargs: :func:`jflows.flows.maf.maf_bijector`'s other options (``cond_shape``,
        ``input_order``, ``sampling``, ``seed``, ...; ``batch_norm=True`` adds its batch
        norm after every layer).
    """
    kwargs.setdefault("batch_norm", False)
    transformer = _spline(num_bins, bound, min_bin_width, min_bin_height, min_derivative)
    return maf_bijector(event_size, num_layers, hidden_sizes, transformer=transformer,
                        activation=activation, output_init_scale=output_init_scale, **kwargs)


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
