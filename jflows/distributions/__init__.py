"""Distributions as pure functions: base, transformed (flow) and PixelCNN++ distributions."""

from jflows.distributions.base import (
    DensityModel,
    Distribution,
    diag_normal,
    logistic,
    standard_normal,
    uniform,
)
from jflows.distributions.mixture import mog_made
from jflows.distributions.pixelcnn import PixelCNN, paper_optimizer, pixel_cnn
from jflows.distributions.transformed import TransformedDistribution, transformed

__all__ = [
    "DensityModel",
    "Distribution",
    "PixelCNN",
    "TransformedDistribution",
    "diag_normal",
    "logistic",
    "mog_made",
    "paper_optimizer",
    "pixel_cnn",
    "standard_normal",
    "transformed",
    "uniform",
]
