"""Bridges between jflows and its JAX peers, both ways: one module per peer.

* :mod:`jflows.interop.distrax`: ``to_bijector`` / ``to_distribution`` (jflows ->
  ``distrax.Bijector`` / ``distrax.Distribution``), ``from_bijector`` /
  ``from_distribution`` (distrax -> jflows).
* :mod:`jflows.interop.tfp`: the same names for TFP-JAX (``tfb.Bijector`` /
  ``tfd.Distribution``).
* :mod:`jflows.interop.flowjax`: ``from_bijection`` / ``from_distribution`` (FlowJAX ->
  jflows, params partitioned with equinox) and ``to_bijection`` (jflows -> FlowJAX).
* :mod:`jflows.interop.nnx`: Flax NNX modules as pure ``(params, ...)`` functions and
  conditioners.
* :mod:`jflows.interop.common`: what they share (binding a model to its params, lifting a
  peer's arrays into params).

Nothing here is imported eagerly: each peer is needed only by its own module
(``from jflows.interop import distrax as jdx``), so jflows imports without them.
"""
