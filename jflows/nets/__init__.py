"""Flax (linen) networks used by jflows models.

The MADE and its activations are exported here; the one autoregressive solver (with
its pluggable per-dimension transformers) is :mod:`jflows.nets.autoregressive`, the
MADE's degree-blocked density evaluation :mod:`jflows.nets.made_blocked` and its
incremental sampling evaluation :mod:`jflows.nets.made_sampling`.
The PixelCNN++ network lives in
:mod:`jflows.nets.pixelcnnpp` (with the layout of its logistic-mixture output in
:mod:`jflows.nets.logistic_mixture_layout`, and its cached sampler in
:mod:`jflows.nets.pixelcnn_cached`) and the FFJORD dynamics in
:mod:`jflows.nets.odenet`; import those from their modules. Like every network module they
import only the bottom layer (:mod:`jflows.conditioning`), never the distributions or
bijectors built on them.
"""

from jflows.nets.activations import ACTIVATIONS, resolve_activation
from jflows.nets.made import EVALUATIONS, MADE, MadeDegrees, made_degrees, made_masks

__all__ = ["ACTIVATIONS", "EVALUATIONS", "MADE", "MadeDegrees", "made_degrees", "made_masks",
           "resolve_activation"]
