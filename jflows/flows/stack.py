"""The layered layout every ready-made stack shares (MAF, RealNVP, NSF).

A stack of ``num_layers`` layers, layer 0 next to the data (first in the density
direction), whose even layers share one structure and odd layers the other, runs in pairs
under :func:`jflows.bijectors.scan` -- one pair compiled whatever the depth -- with
params/state ``{'pairs': {'even': L, 'odd': L}, ['last': L]}``: each leaf of ``'pairs'``
stacked over the ``num_layers // 2`` pairs, ``'last'`` the final layer when
``num_layers`` is odd.
"""

from __future__ import annotations

from collections.abc import Callable

import jflows.bijectors as jb


def alternating_stack(layer: Callable[[int], jb.Bijector], num_layers: int) -> jb.Bijector:
    """Layers ``layer(0) .. layer(num_layers - 1)`` in the layout of the module docstring."""
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}.")
    parts = {}
    if num_layers % 2:
        parts["last"] = layer(num_layers - 1)
    if num_layers >= 2:
        pair = jb.chain(odd=layer(1), even=layer(0))
        # scan's forward runs stack index 0 first; inverting twice makes its inverse (the
        # density direction) run pair 0 -- the layers next to the data -- first.
        parts["pairs"] = jb.invert(jb.scan(jb.invert(pair), num_layers // 2))
    return jb.chain(**parts)
