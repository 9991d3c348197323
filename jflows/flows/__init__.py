"""Ready-made flow models: MAF, MADE, MAF MoG, RealNVP, NSF (coupling and
autoregressive) and Glow."""

from jflows.flows.glow import GlowConditioner, glow, glow_bijector, glow_step
from jflows.flows.maf import gaussian_made, layer_params, maf, maf_bijector, maf_mog
from jflows.flows.nsf import (
    nsf_autoregressive,
    nsf_autoregressive_bijector,
    nsf_coupling,
    nsf_coupling_bijector,
)
from jflows.flows.realnvp import coupling_stack, realnvp, realnvp_bijector
from jflows.flows.stack import alternating_stack

__all__ = [
    "GlowConditioner",
    "alternating_stack",
    "coupling_stack",
    "gaussian_made",
    "glow",
    "glow_bijector",
    "glow_step",
    "layer_params",
    "maf",
    "maf_bijector",
    "maf_mog",
    "nsf_autoregressive",
    "nsf_autoregressive_bijector",
    "nsf_coupling",
    "nsf_coupling_bijector",
    "realnvp",
    "realnvp_bijector",
]
