"""Ready-made flow models: MAF, MADE and MAF MoG."""

from jflows.flows.maf import gaussian_made, layer_params, maf, maf_bijector, maf_mog

__all__ = ["gaussian_made", "layer_params", "maf", "maf_bijector", "maf_mog"]
