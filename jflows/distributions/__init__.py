"""Distributions as pure functions: base distributions and transformed (flow) distributions."""

from jflows.distributions.base import (
    Distribution,
    diag_normal,
    logistic,
    standard_normal,
    uniform,
)
from jflows.distributions.transformed import TransformedDistribution, transformed

__all__ = [
    "Distribution",
    "TransformedDistribution",
    "diag_normal",
    "logistic",
    "standard_normal",
    "transformed",
    "uniform",
]
