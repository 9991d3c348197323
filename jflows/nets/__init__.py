"""Flax (linen) networks used by jflows models.

The MADE and its activations are exported here. The PixelCNN++ network lives in
:mod:`jflows.nets.pixelcnnpp` and the FFJORD dynamics in :mod:`jflows.nets.odenet`;
import those from their modules (the PixelCNN++ network needs the likelihood's layout
from :mod:`jflows.distributions`, which itself builds on the MADE, so exporting it here
would make the packages import each other).
"""

from jflows.nets.activations import ACTIVATIONS, resolve_activation
from jflows.nets.made import MADE, MadeDegrees, made_degrees, made_masks

__all__ = ["ACTIVATIONS", "MADE", "MadeDegrees", "made_degrees", "made_masks", "resolve_activation"]
