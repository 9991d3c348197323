"""Combinators: chain, invert, block and scan.

All of them thread ``cond`` and ``train`` to every part unchanged, give each part its own
key (``jax.random.fold_in(key, part_index)``, the same index in both directions), and
sum the parts' log-dets down to the combinator's batch shape. The parts' diagnostics
(``info``, see :mod:`jflows.bijectors.base`) come back in the shape of the params: a
tuple or dict per part for ``chain`` and ``block``, stacked over layers for ``scan``.
A combinator's ``cond_shape`` is its conditional parts' (which must agree).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jflows.bijectors.base import (
    Bijector,
    batch_shape_of,
    call_with_info,
    check_event_rank,
    has_info,
    output_event_ndims,
    reduce_to_batch,
    split_key,
    without_info,
)
from jflows.conditioning import merge_cond_shapes


def combined_bijector(name, parts, init, forward_with_info, inverse_with_info, event_ndims,
              event_ndims_out=None) -> Bijector:
    """A combinator's Bijector: forward/inverse derived from the ``*_with_info`` bodies,
    which are exposed only when some part reports diagnostics. Shared by chain, block,
    scan and :func:`jflows.bijectors.multiscale.factor_out`."""
    reports = has_info(*parts)
    return Bijector(
        init,
        without_info(forward_with_info),
        without_info(inverse_with_info),
        event_ndims,
        event_ndims_out,
        merge_cond_shapes([part.cond_shape for part in parts], name),
        forward_with_info if reports else None,
        inverse_with_info if reports else None,
    )


def _chain_event_ndims(parts) -> tuple[int, int | None]:
    """Event ndims of a sequence run first-to-last: ``(in, out or None if shape-preserving)``.

    Part ``i`` sees ``n_in + sum_{j<i} (out_j - in_j)`` axes, which must be at least its
    own ``event_ndims``; the chain takes the smallest ``n_in`` for which that holds.
    """
    needed, delta = 0, 0
    for part in parts:
        needed = max(needed, part.event_ndims - delta)
        delta += output_event_ndims(part) - part.event_ndims
    if all(part.event_ndims_out is None for part in parts):
        return needed, None
    return needed, needed + delta


def chain(*bijectors: Bijector, **named_bijectors: Bijector) -> Bijector:
    """Compose bijectors; **the first runs first** in the forward direction.

    ``chain(b1, b2, b3).forward(x) = b3(b2(b1(x)))`` and the inverse undoes ``b3`` first.
    This is the *opposite* of TFP's ``tfb.Chain([b3, b2, b1])``, which applies its list
    last-to-first like function composition; jflows lists layers in the order data flows
    from the base distribution, like ``optax.chain`` lists transformations.

    ``log|det J| = sum_i log|det J_i|`` at each part's own input. Parts may have fewer
    event axes than the chain; their log-dets are summed over the remaining ones.

    Positional parts give tuple params/state (``params[i]``); keyword parts give dicts
    that read well in checkpoints (``chain(made=..., norm=...)`` -> ``params['made']``).
    """
    if bijectors and named_bijectors:
        raise ValueError("chain: give the parts either all positionally or all by keyword.")
    if named_bijectors:
        names = tuple(named_bijectors)
        parts = tuple(named_bijectors.values())

        def pack(values):
            return dict(zip(names, values, strict=True))

        def unpack(tree, what):
            if not isinstance(tree, dict) or set(tree) != set(names):
                got = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
                raise ValueError(f"chain: expected {what} as a dict with keys {list(names)}, "
                                 f"got {got}.")
            return [tree[name] for name in names]

    else:
        parts = tuple(bijectors)
        pack = tuple

        def unpack(tree, what):
            if not isinstance(tree, (tuple, list)) or len(tree) != len(parts):
                got = f"length {len(tree)}" if isinstance(tree, (tuple, list)) else type(tree)
                raise ValueError(f"chain: expected {what} as a tuple of {len(parts)} entries "
                                 f"(one per part, as init returns), got {got}.")
            return list(tree)
    if not parts:
        raise ValueError("chain: needs at least one bijector.")
    for i, part in enumerate(parts):
        if not isinstance(part, Bijector):
            raise TypeError(f"chain: part {i} is a {type(part).__name__}, not a Bijector.")
    event_ndims, event_ndims_out = _chain_event_ndims(parts)
    input_ndims = {
        "forward": event_ndims,
        "inverse": event_ndims if event_ndims_out is None else event_ndims_out,
    }

    def init(key, x):
        check_event_rank(x, event_ndims, "chain")
        params, state = [], []
        for part, k in zip(parts, jax.random.split(key, len(parts)), strict=True):
            p, s = part.init(k, x)
            params.append(p)
            state.append(s)
            if part.event_ndims_out is not None:
                x = jax.eval_shape(lambda p, s, x, part=part: part.forward(p, s, x)[0], p, s, x)
        return pack(params), pack(state)

    def _run(order, params, state, x, direction, **kwargs):
        check_event_rank(x, input_ndims[direction], f"chain.{direction}")
        batch_ndim = x.ndim - input_ndims[direction]
        keys = split_key(kwargs.pop("key"), len(parts))
        params, state = unpack(params, "params"), unpack(state, "state")
        new_state, info = list(state), [()] * len(parts)
        log_det = jnp.zeros(x.shape[:batch_ndim], x.dtype)
        for i in order:
            x, part_log_det, new_state[i], info[i] = call_with_info(
                parts[i], direction, params[i], state[i], x, key=keys[i], **kwargs)
            log_det = log_det + reduce_to_batch(part_log_det, batch_ndim)
        return x, log_det, pack(new_state), pack(info)

    def forward(params, state, x, *, cond=None, train=False, key=None):
        order = range(len(parts))
        return _run(order, params, state, x, "forward", cond=cond, train=train, key=key)

    def inverse(params, state, y, *, cond=None, train=False, key=None):
        order = reversed(range(len(parts)))
        return _run(order, params, state, y, "inverse", cond=cond, train=train, key=key)

    return combined_bijector("chain", parts, init, forward, inverse, event_ndims, event_ndims_out)


def invert(bijector: Bijector) -> Bijector:
    """Swap forward and inverse: ``invert(b).forward = b.inverse``. TFP: ``tfb.Invert``.

    Params and state are ``b``'s own pytrees, created by ``b.init``. For a
    shape-changing ``b`` (one with ``event_ndims_out`` set) ``init`` receives an example
    of ``b``'s *input*; equivalently, use the params from ``b.init`` directly.
    """
    event_ndims_out = None if bijector.event_ndims_out is None else bijector.event_ndims
    return Bijector(
        bijector.init,
        bijector.inverse,
        bijector.forward,
        output_event_ndims(bijector),
        event_ndims_out,
        bijector.cond_shape,
        bijector.inverse_with_info,
        bijector.forward_with_info,
    )


def block(bijectors, sizes) -> Bijector:
    """Apply ``bijectors[i]`` to the ``i``-th slice of the last axis, of size ``sizes[i]``.

    TFP: ``tfb.Blockwise(bijectors, block_sizes=sizes)``. The event is the last axis
    (``event_ndims = 1``); each part must preserve shape and have ``event_ndims <= 1``.
    ``log|det J| = sum_i log|det J_i|``. Params/state are tuples, one entry per block.
    """
    parts = tuple(bijectors)
    sizes = tuple(int(s) for s in sizes)
    if len(parts) != len(sizes) or not parts:
        raise ValueError(
            f"block: need one size per bijector, got {len(parts)} bijectors and sizes {sizes}."
        )
    if any(s <= 0 for s in sizes):
        raise ValueError(f"block: sizes must be positive, got {sizes}.")
    for i, part in enumerate(parts):
        if part.event_ndims > 1 or part.event_ndims_out is not None:
            raise ValueError(
                f"block: part {i} must act on a vector slice (event_ndims <= 1, shape-"
                f"preserving), got event_ndims={part.event_ndims}, "
                f"event_ndims_out={part.event_ndims_out}."
            )
    bounds = [0, *[sum(sizes[: i + 1]) for i in range(len(sizes))]]
    total = bounds[-1]

    def slices(x, name):
        check_event_rank(x, 1, name)
        if x.shape[-1] != total:
            raise ValueError(
                f"{name}: expected a last axis of size {total} (sum of block sizes {sizes}), "
                f"got input of shape {tuple(x.shape)}."
            )
        return [x[..., a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def init(key, x):
        check_event_rank(x, 1, "block.init")
        if x.shape[-1] != total:
            slices(x, "block.init")  # raises the size error
        out = [
            part.init(k, jax.ShapeDtypeStruct((*x.shape[:-1], size), x.dtype))
            for part, k, size in zip(parts, jax.random.split(key, len(parts)), sizes, strict=True)
        ]
        return tuple(p for p, _ in out), tuple(s for _, s in out)

    def _run(params, state, x, direction, key, **kwargs):
        pieces = slices(x, f"block.{direction}")
        batch_ndim = x.ndim - 1
        outs, new_state, info = [], [], []
        log_det = jnp.zeros(batch_shape_of(x, 1), x.dtype)
        for part, p, s, piece, k in zip(
            parts, params, state, pieces, split_key(key, len(parts)), strict=True
        ):
            y, part_log_det, s, part_info = call_with_info(part, direction, p, s, piece,
                                                           key=k, **kwargs)
            outs.append(y)
            new_state.append(s)
            info.append(part_info)
            log_det = log_det + reduce_to_batch(part_log_det, batch_ndim)
        return jnp.concatenate(outs, axis=-1), log_det, tuple(new_state), tuple(info)

    def forward(params, state, x, *, cond=None, train=False, key=None):
        return _run(params, state, x, "forward", key, cond=cond, train=train)

    def inverse(params, state, y, *, cond=None, train=False, key=None):
        return _run(params, state, y, "inverse", key, cond=cond, train=train)

    return combined_bijector("block", parts, init, forward, inverse, 1)


def scan(bijector: Bijector, num_layers: int) -> Bijector:
    """``num_layers`` copies of ``bijector`` with their own params, compiled once.

    Params and state are ``bijector``'s pytrees with a leading axis of size
    ``num_layers`` (initialised with independent keys); forward runs layer 0 first with
    :func:`jax.lax.scan`, inverse runs them in reverse. The traced and compiled program
    contains one layer, so compile time does not grow with depth.
    ``log|det J| = sum_l log|det J_l|``. Layer ``l`` gets ``fold_in(key, l)``.
    """
    if num_layers < 1:
        raise ValueError(f"scan: num_layers must be >= 1, got {num_layers}.")
    if bijector.event_ndims_out is not None:
        raise ValueError("scan: the repeated bijector must preserve the input's shape.")
    event_ndims = bijector.event_ndims

    def init(key, x):
        check_event_rank(x, event_ndims, "scan")
        return jax.vmap(lambda k: bijector.init(k, x))(jax.random.split(key, num_layers))

    def _run(params, state, x, direction, key, **kwargs):
        check_event_rank(x, event_ndims, f"scan.{direction}")
        batch_ndim = x.ndim - event_ndims

        def layer(carry, inputs):
            x, log_det = carry
            p, s, index = inputs
            k = None if key is None else jax.random.fold_in(key, index)
            y, layer_log_det, s, info = call_with_info(bijector, direction, p, s, x, key=k,
                                                       **kwargs)
            return (y, log_det + reduce_to_batch(layer_log_det, batch_ndim)), (s, info)

        carry = (x, jnp.zeros(batch_shape_of(x, event_ndims), x.dtype))
        (y, log_det), (new_state, info) = jax.lax.scan(
            layer,
            carry,
            (params, state, jnp.arange(num_layers)),
            reverse=direction == "inverse",
        )
        return y, log_det, new_state, info

    def forward(params, state, x, *, cond=None, train=False, key=None):
        return _run(params, state, x, "forward", key, cond=cond, train=train)

    def inverse(params, state, y, *, cond=None, train=False, key=None):
        return _run(params, state, y, "inverse", key, cond=cond, train=train)

    return combined_bijector("scan", [bijector], init, forward, inverse, event_ndims)

