"""Flax linen networks used by jflows models (conditioners and autoregressive networks)."""

from jflows.nets.pixelcnnpp import GatedResnet, PixelCNNNetwork, WeightNormConv

__all__ = ["GatedResnet", "PixelCNNNetwork", "WeightNormConv"]
