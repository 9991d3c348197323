"""Flax (linen) networks used as conditioners of flows."""

from jflows.nets.activations import ACTIVATIONS, resolve_activation
from jflows.nets.made import MADE, MadeDegrees, made_degrees, made_masks

__all__ = ["ACTIVATIONS", "MADE", "MadeDegrees", "made_degrees", "made_masks", "resolve_activation"]
