"""Flax (linen) networks used by jflows models (conditioners and autoregressive networks)."""

from jflows.nets.activations import ACTIVATIONS, resolve_activation
from jflows.nets.made import MADE, MadeDegrees, made_degrees, made_masks
from jflows.nets.pixelcnnpp import GatedResnet, PixelCNNNetwork, WeightNormConv

__all__ = [
    "ACTIVATIONS",
    "MADE",
    "GatedResnet",
    "MadeDegrees",
    "PixelCNNNetwork",
    "WeightNormConv",
    "made_degrees",
    "made_masks",
    "resolve_activation",
]
