"""Distributions as pure functions: base distributions and transformed (flow) distributions."""

from jflows.distributions.base import (
    Distribution,
    diag_normal,
    logistic,
    standard_normal,
    uniform,
)
from jflows.distributions.mixture import mog_made
from jflows.distributions.transformed import TransformedDistribution, transformed

__all__ = [
    "Distribution",
    "TransformedDistribution",
    "diag_normal",
    "logistic",
    "mog_made",
    "standard_normal",
    "transformed",
    "uniform",
]
