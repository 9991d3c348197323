"""RealNVP (Dinh et al. 2017) and coupling stacks as ready-made density models.

In the density direction (data ``x`` -> base ``u``) a stack of ``num_layers`` couplings is::

    x -> coupling_0 -> [batch norm_0] -> coupling_1 -> ... -> [batch norm_{L-1}] -> u

with a standard normal base, so ``log p(x) = log N(u; 0, I) + sum_l log|det J_l|``.
Coupling ``l`` (:func:`jflows.bijectors.coupling.split_coupling`) cuts the vector at
``D // 2``: even layers keep the first half and transform the second, odd layers the
reverse (RealNVP's alternating masks), each with an :class:`~jflows.bijectors.coupling.
MLPConditioner` whose zero-initialised output layer makes the fresh flow the identity.
RealNVP's transformer is the affine one, ``y_B = x_B exp(s(x_A)) + t(x_A)`` (``log|det| =
sum s``; optionally ``s = b tanh(raw / b)``); :mod:`jflows.flows.nsf` plugs the spline in.

Layout (as :func:`jflows.flows.maf.maf_bijector`): every even layer has one structure and
every odd layer the other, so the layers run in pairs under :func:`jflows.bijectors.scan`
-- one pair compiled whatever the depth -- with params/state ``{'pairs': {'even': L,
'odd': L}, ['last': L]}`` (``'pairs'`` leaves stacked over the ``num_layers // 2`` pairs;
``'last'`` the final layer when ``num_layers`` is odd) and ``L = {'coupling': ...,
['batch_norm': ...]}``. Layer 0 is next to the data.

With ``cond_shape=(C,)`` every conditioner also reads a conditioning vector, passed as
``cond=`` to ``log_prob`` / ``sample``. Batch norm (``batch_norm=True``) follows every
coupling in the density direction, as RealNVP's and MAF's; see :mod:`jflows.flows.maf`
for ``train=True`` and :func:`jflows.bijectors.recompute_batch_norm_statistics`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jflows.bijectors as jb
from jflows.bijectors.autoregressive import affine_transformer
from jflows.bijectors.coupling import MLPConditioner, split_coupling
from jflows.distributions import standard_normal, transformed
from jflows.distributions.transformed import TransformedDistribution
from jflows.flows.stack import alternating_stack
from jflows.nets.autoregressive import Transformer


def coupling_stack(
    event_size: int,
    num_layers: int,
    transformer: Transformer,
    hidden_sizes: Sequence[int] = (64, 64),
    *,
    activation: str | Callable = "relu",
    batch_norm: bool = False,
    batch_norm_decay: float = 0.99,
    batch_norm_eps: float = 1e-5,
    axis_name=None,
    cond_shape=None,
) -> jb.Bijector:
    """``num_layers`` alternating split couplings with ``transformer`` (see the module
    docstring); each conditioner an :class:`MLPConditioner` of ``hidden_sizes`` and
    ``activation`` reading ``cond`` when ``cond_shape`` is given."""
    if event_size < 2:
        raise ValueError(f"coupling_stack: a coupling needs event_size >= 2 (one part kept, "
                         f"one transformed), got {event_size}.")
    cut = event_size // 2

    def layer(index):
        swap = index % 2 == 1
        size = cut if swap else event_size - cut
        net = MLPConditioner(size, transformer.params_per_dim, tuple(hidden_sizes), activation)
        parts = {"coupling": split_coupling(cut, net, transformer, swap=swap,
                                            cond_shape=cond_shape)}
        if batch_norm:
            parts["batch_norm"] = jb.batch_norm(decay=batch_norm_decay, eps=batch_norm_eps,
                                                axis_name=axis_name)
        # chain runs its first part first in the sampling direction: base side first.
        return jb.chain(**dict(reversed(parts.items())))

    return alternating_stack(layer, num_layers)


def realnvp_bijector(event_size: int, num_layers: int = 8,
                     hidden_sizes: Sequence[int] = (64, 64), *,
                     log_scale_bound: float | None = 3.0, **kwargs) -> jb.Bijector:
    """RealNVP's affine coupling stack as one bijector (forward = sampling direction).

    ``log_scale_bound``: ``s = b tanh(raw / b)``, RealNVP's own tanh-bounded scale (the
    default 3 keeps each layer's scale within ``e^{±3}``; unbounded scales gave a NaN
    log-likelihood on MINIBOONE in experiments/nsf_tabular); None: unbounded. Other options
    (``activation``, ``batch_norm``, ``batch_norm_decay``, ``batch_norm_eps``,
    ``axis_name``, ``cond_shape``) as :func:`coupling_stack`.
    """
    return coupling_stack(event_size, num_layers, affine_transformer(log_scale_bound),
                          hidden_sizes, **kwargs)


def realnvp(event_size: int, num_layers: int = 8, hidden_sizes: Sequence[int] = (64, 64),
            **kwargs) -> TransformedDistribution:
    """RealNVP with a standard normal base; options as :func:`realnvp_bijector`."""
    return transformed(standard_normal((event_size,)),
                       realnvp_bijector(event_size, num_layers, hidden_sizes, **kwargs))
