"""Flax (linen) networks used by jflows models.

The MADE and its activations are exported here; the one autoregressive solver (with
its pluggable per-dimension transformers) is :mod:`jflows.nets.autoregressive`, the
MADE's incremental evaluation :mod:`jflows.nets.made_sampling`.
The PixelCNN++ network lives in
:mod:`jflows.nets.pixelcnnpp` (with the layout of its logistic-mixture output in
:mod:`jflows.nets.logistic_mixture_layout`) and the FFJORD dynamics in
:mod:`jflows.nets.odenet`; import those from their modules. Like every network module they
import only the bottom layer (:mod:`jflows.conditioning`), never the distributions or
bijectors built on them.
"""

from jflows.nets.activations import ACTIVATIONS, resolve_activation
from jflows.nets.made import MADE, MadeDegrees, made_degrees, made_masks

__all__ = ["ACTIVATIONS", "MADE", "MadeDegrees", "made_degrees", "made_masks", "resolve_activation"]
