"""Flax (linen) networks used by jflows' bijectors; import each from its module."""
