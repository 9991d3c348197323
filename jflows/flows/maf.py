"""MAF, MADE and MAF MoG density models (Papamakarios et al. 2017).

In the density direction (data ``x`` -> base ``u``) a MAF of ``num_layers`` layers is::

    x -> MADE-affine_0 -> batch norm_0 -> MADE-affine_1 -> ... -> batch norm_{L-1} -> u

with the autoregressive order reversed from each MADE to the next and a standard normal
base, so::

    log p(x) = log N(u; 0, I) + sum_l [ -sum_i alpha_{l,i} + log|det BN_l| ]

where ``alpha_l`` is layer ``l``'s log-scale (see
:mod:`jflows.bijectors.autoregressive`). Layer 0 is the one next to the data, the first
in the density direction, as in the MAF paper and its reference code; sampling runs the
layers in the opposite order.

The order reversal between layers is made, as in the reference code, by reversing the
next MADE's input order rather than by permuting the data: ``MADE_{l+1}`` with the
reversed order on ``u_l`` is the same model as ``MADE_{l+1}`` with the original order on
``reverse(u_l)`` (and the final ``u`` differs by a permutation, which the standard normal
base does not see), but no data moves. On XLA CPU an explicit ``jnp.flip`` between layers
made the density pass ~1.7x slower at D = 64, 10 layers (measured; see BENCHMARKS.md).

Layers run in pairs (even order, reversed order) under :func:`jflows.bijectors.scan`
whenever the structure repeats with period two: one pair is compiled whatever the depth,
and each pair's output is a materialised loop carry. Unrolled, XLA CPU re-fuses every
layer's cheap elementwise tail (batch norm, the affine update) into the next layer's,
recomputing the whole chain at every layer (fusions with 60+ operands at 10 layers);
with batch norm that made the unrolled density pass ~1.5x slower at D = 64.

The factories return :class:`jflows.distributions.TransformedDistribution` objects (the
:class:`jflows.distributions.DensityModel` protocol: ``init``, ``log_prob``,
``log_prob_and_state``, ``sample``, ...; params and state ``{'base', 'bijector'}``, the
bijector's state holding the batch-norm statistics). With ``cond_shape=(C,)`` every MADE
takes a conditioning vector (the conditional MAF of the paper's Sec. 3.4), passed as
``cond=`` to ``log_prob``/``sample`` (see :mod:`jflows.conditioning`).

Batch norm: ``log_prob_and_state(..., train=True)`` normalises with batch statistics
(averaged over ``axis_name`` under data-parallel training) and returns updated running
averages; after training,
``recompute_batch_norm_statistics(flow.bijector, params['bijector'], state['bijector'], x)``
(:func:`jflows.bijectors.recompute_batch_norm_statistics`) sets them from the whole
training set as the paper did.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax

import jflows.bijectors as jb
from jflows.distributions import mog_made, standard_normal, transformed
from jflows.distributions.transformed import TransformedDistribution
from jflows.flows.stack import alternating_stack
from jflows.nets.autoregressive import Transformer
from jflows.nets.made import MADE


def _layer_seed(seed: int, layer: int) -> int:
    return seed + 1000 * layer


def _named(option, name: str) -> bool:
    """Whether an order / degree option is the string ``name`` (it may also be an array)."""
    return isinstance(option, str) and option == name


def layer_input_order(input_order, layer: int, reverse_between_layers: bool = True):
    """Layer ``layer``'s MADE input order: ``input_order`` reversed on every odd layer.

    ``'random'`` stays ``'random'`` (each layer draws its own from its seed)."""
    if not reverse_between_layers or layer % 2 == 0 or _named(input_order, "random"):
        return input_order
    if _named(input_order, "natural"):
        return "reversed"
    if _named(input_order, "reversed"):
        return "natural"
    return tuple(input_order)[::-1]


def maf_bijector(
    event_size: int,
    num_layers: int = 5,
    hidden_sizes: Sequence[int] = (100, 100),
    *,
    activation: str | Callable = "tanh",
    batch_norm: bool = True,
    batch_norm_decay: float = 0.99,
    batch_norm_eps: float = 1e-5,
    axis_name=None,
    cond_shape=None,
    input_order: str | Sequence[int] = "natural",
    hidden_degrees: str = "equal",
    reverse_between_layers: bool = True,
    log_scale_bound: float | None = None,
    transformer: Transformer | None = None,
    output_init_scale: float = 1e-2,
    evaluation: str = "blocked",
    sampling: str = "auto",
    seed: int = 0,
) -> jb.Bijector:
    """The MAF stack as one bijector (forward = sampling direction).

    Args:
      event_size: ``D``.
      num_layers: number of MADE-affine layers.
      hidden_sizes, activation, cond_shape, hidden_degrees, output_init_scale, evaluation:
        each MADE's (see :class:`jflows.nets.MADE`; ``cond_shape=(C,)`` for a conditioning
        vector; ``evaluation="dense"`` for the masked dense product instead of the default
        degree-blocked one).
      input_order: layer 0's MADE input order (see :class:`jflows.nets.MADE`); with
        ``'random'`` each layer draws its own.
      reverse_between_layers: reverse the order from each layer to the next (the paper's
        stack); see :func:`layer_input_order`.
      batch_norm: a batch-norm bijector after every MADE (density direction).
      batch_norm_decay, batch_norm_eps, axis_name: see :func:`jflows.bijectors.batch_norm`;
        set ``axis_name=jflows.train.DATA_AXIS`` for cross-device batch statistics.
      log_scale_bound: bound of every layer's log-scale (None: unbounded, as the paper).
      transformer: every layer's per-dimension map (default: the paper's
        :func:`jflows.bijectors.affine_transformer` with ``log_scale_bound``); e.g.
        :func:`jflows.bijectors.softplus_affine_transformer` (FlowJAX's), or a spline
        (:func:`jflows.flows.nsf_autoregressive_bijector` is this stack with one).
      sampling: ``"auto"`` (the incremental MADE evaluation, about one network pass per
        layer) or ``"passes"`` (``D`` passes); see
        :func:`jflows.bijectors.masked_autoregressive`.
      seed: NumPy seed of random orders / degrees (layer ``l`` uses ``seed + 1000 l``).

    Layout (see the module docstring): when every even layer has the same MADE structure
    and every odd layer the other (any fixed order, equal hidden degrees), the layers run
    in pairs under :func:`jflows.bijectors.scan` -- compiled once, whatever
    ``num_layers`` -- with params/state ``{'pairs': {'even': L, 'odd': L}, ['last': L]}``
    (each leaf of ``'pairs'`` stacked over the ``num_layers // 2`` pairs; ``'last'`` is
    the final layer when ``num_layers`` is odd), where ``L = {'made': ...,
    'batch_norm': ...}``. Random orders or random hidden degrees give every layer its own
    masks: the layers are then unrolled, ``{'layer_0': L, 'layer_1': L, ...}``. Either
    way :func:`layer_params` returns layer ``l``'s ``L``.
    """
    if num_layers < 1:
        raise ValueError(f"maf: num_layers must be >= 1, got {num_layers}.")

    def layer(index):
        made = MADE(
            event_size,
            hidden_sizes,
            params_per_dim=2 if transformer is None else transformer.params_per_dim,
            input_order=layer_input_order(input_order, index, reverse_between_layers),
            hidden_degrees=hidden_degrees,
            activation=activation,
            cond_shape=cond_shape,
            seed=_layer_seed(seed, index),
            output_init_scale=output_init_scale,
            evaluation=evaluation,
        )
        parts = {"made": jb.masked_autoregressive(made, log_scale_bound=log_scale_bound,
                                                  transformer=transformer, sampling=sampling)}
        if batch_norm:
            parts["batch_norm"] = jb.batch_norm(
                decay=batch_norm_decay, eps=batch_norm_eps, axis_name=axis_name
            )
        # chain runs its first part first in the sampling direction: base side first.
        return jb.chain(**dict(reversed(parts.items())))

    if _named(input_order, "random") or _named(hidden_degrees, "random"):
        return jb.chain(**{f"layer_{i}": layer(i) for i in reversed(range(num_layers))})
    return alternating_stack(layer, num_layers)


def _num_layers(tree) -> int | None:
    """How many layers a :func:`maf_bijector` params/state tree holds (None: a stateless
    scanned stack, whose empty entries do not say)."""
    keys = list(tree) if isinstance(tree, dict) else []
    unrolled = [key for key in keys if key.startswith("layer_")]
    if not unrolled and not {"pairs", "last"} & set(keys):
        raise ValueError(f"layer_params: expected a maf_bijector's params or state (e.g. "
                         f"params['bijector']), got {type(tree).__name__} with keys {keys}.")
    if unrolled:
        return len(unrolled)
    leaves = jax.tree_util.tree_leaves(tree.get("pairs"))
    if "pairs" in tree and not leaves:
        return None
    return 2 * (leaves[0].shape[0] if leaves else 0) + ("last" in tree)


def layer_params(tree, layer: int, *, num_layers: int | None = None):
    """Layer ``layer``'s ``{'made': ..., ['batch_norm': ...]}`` entry of a
    :func:`maf_bijector`'s params or state (either layout).

    ``num_layers`` (the stack's depth) is needed only for the state of a stack without
    batch norm, whose empty entries do not say how many layers there are; when given it
    is checked against the tree.
    """
    found = _num_layers(tree)
    if found is None and num_layers is None:
        raise ValueError("layer_params: this stateless stack's empty state does not say how "
                         "many layers it has; pass num_layers= to check the layer index.")
    fits = (num_layers is None or found == num_layers
            or (found is None and num_layers % 2 == ("last" in tree)))
    if not fits:
        raise ValueError(f"layer_params: num_layers={num_layers} does not match the tree "
                         f"(keys {sorted(tree)}).")
    count = found if found is not None else num_layers
    if not 0 <= layer < count:
        raise ValueError(f"layer_params: no layer {layer} in a stack of {count} layers.")
    if f"layer_{layer}" in tree:
        return tree[f"layer_{layer}"]
    if layer == count - 1 and "last" in tree:
        return tree["last"]
    half = tree["pairs"]["odd" if layer % 2 else "even"]
    return jax.tree_util.tree_map(lambda leaf: leaf[layer // 2], half)


def maf(event_size: int, num_layers: int = 5, hidden_sizes: Sequence[int] = (100, 100),
        **kwargs) -> TransformedDistribution:
    """MAF with a standard normal base; keyword options as :func:`maf_bijector`."""
    bijector = maf_bijector(event_size, num_layers, hidden_sizes, **kwargs)
    return transformed(standard_normal((event_size,)), bijector)


def gaussian_made(event_size: int, hidden_sizes: Sequence[int] = (100, 100),
                  **kwargs) -> TransformedDistribution:
    """The paper's MADE (Gaussian conditionals): one MADE-affine layer, no batch norm.

    ``log p(x) = sum_i log N(x_i; m_i, exp(alpha_i)^2)`` with ``(m, alpha) = MADE(x_{<i})``.
    Keyword options as :func:`maf_bijector` (``batch_norm`` is off).
    """
    kwargs.setdefault("batch_norm", False)
    return maf(event_size, 1, hidden_sizes, **kwargs)


def maf_mog(
    event_size: int,
    num_layers: int = 5,
    hidden_sizes: Sequence[int] = (100, 100),
    *,
    num_components: int = 10,
    activation: str | Callable = "tanh",
    cond_shape=None,
    input_order: str | Sequence[int] = "natural",
    hidden_degrees: str = "equal",
    seed: int = 0,
    **kwargs,
) -> TransformedDistribution:
    """MAF MoG: a MAF whose base is a MADE MoG (:func:`jflows.distributions.mog_made`).

    As the reference code's ``MaskedAutoregressiveFlow_on_MADE``: the MADE MoG models the
    MAF's base variable ``u``, its order reversed once more after the last MAF layer.
    ``params['base']`` are the MADE MoG's. Other keyword options as :func:`maf_bijector`.
    """
    shared = dict(activation=activation, cond_shape=cond_shape, hidden_degrees=hidden_degrees,
                  sampling=kwargs.pop("sampling", "auto"))
    reverse = kwargs.get("reverse_between_layers", True)
    flow = maf_bijector(event_size, num_layers, hidden_sizes, seed=seed,
                        input_order=input_order, **shared, **kwargs)
    base = mog_made(event_size, num_components, hidden_sizes,
                    input_order=layer_input_order(input_order, num_layers, reverse),
                    seed=_layer_seed(seed, num_layers), **shared)
    return transformed(base, flow)
