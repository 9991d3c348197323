"""Activation functions chosen by name or given as a function."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "elu": jax.nn.elu,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
    "sigmoid": jax.nn.sigmoid,
    "softplus": jax.nn.softplus,
    "leaky_relu": jax.nn.leaky_relu,
    "linear": lambda x: x,
}


def resolve_activation(activation: str | Callable) -> Callable[[jax.Array], jax.Array]:
    """The elementwise function named by ``activation`` (a key of :data:`ACTIVATIONS`),
    or ``activation`` itself when it is callable."""
    if callable(activation):
        return activation
    if isinstance(activation, str) and activation in ACTIVATIONS:
        return ACTIVATIONS[activation]
    raise ValueError(
        f"activation: expected a callable or one of {sorted(ACTIVATIONS)}, got {activation!r}."
    )
