"""The training state: one pytree holding everything a step reads and writes.

:class:`TrainState` is a ``NamedTuple`` (so a pytree, checkpointable by orbax, mappable by
``jax.tree.map``) of

* ``step``: int32 count of batches consumed (skipped steps included, so it is also the
  position in the data stream an exact resume restarts from),
* ``params``: what the optimizer trains,
* ``model_state``: what the model updates itself (batch-norm running statistics),
* ``opt_state``: the optax state,
* ``ema_params``: the exponential moving average of ``params`` (Polyak averaging),
  ``None`` when no EMA is kept,
* ``ema_decay``: the EMA's decay (a float32 scalar), ``None`` when no EMA is kept. The EMA
  is configured here and only here: the step reads the decay from the state, so an EMA
  cannot be half-configured (kept but never updated),
* ``key``: the raw ``uint32`` data of the run's PRNG key. Steps never advance it: step ``t``
  uses ``fold_in(key, t)``, so the randomness of any step is a function of ``(key, t)``
  and a resumed run draws exactly what an uninterrupted one did,
* ``nonfinite_steps``: how many steps had a non-finite loss or gradient (and were skipped),
* ``nonfinite_streak``: how many of the most recent steps in a row were skipped.

The optimizer itself (pure functions) is not part of the state; pass the same optax
transformation to :func:`TrainState.create` and :func:`jflows.train.make_train_step` (the
step refuses an optimizer whose state has another structure than ``opt_state``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class TrainState(NamedTuple):
    """Everything a training step reads and writes; see the module docstring."""

    step: jax.Array
    params: Any
    model_state: Any
    opt_state: Any
    ema_params: Any
    ema_decay: jax.Array | None
    key: jax.Array
    nonfinite_steps: jax.Array
    nonfinite_streak: jax.Array

    @classmethod
    def create(cls, *, params, model_state=(), optimizer, key, ema_decay: float | None = None):
        """A fresh state at step 0.

        Args:
          params: the trainable parameters (any pytree of float arrays).
          model_state: the model's non-trained state, ``()`` when it has none.
          optimizer: an ``optax.GradientTransformation``; its ``init(params)`` gives the
            optimizer state.
          key: the run's PRNG key, typed (``jax.random.key``) with the default
            implementation, or raw (``jax.random.PRNGKey``).
          ema_decay: keep an EMA of the params (initialised to ``params``) when not None.
        """
        if ema_decay is not None and not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"TrainState.create: ema_decay must be in [0, 1), got {ema_decay}.")
        params = jax.tree.map(jnp.asarray, params)
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            model_state=jax.tree.map(jnp.asarray, model_state),
            opt_state=optimizer.init(params),
            ema_params=None if ema_decay is None else params,
            ema_decay=None if ema_decay is None else jnp.asarray(ema_decay, jnp.float32),
            key=raw_key_data(key),
            nonfinite_steps=jnp.zeros((), jnp.int32),
            nonfinite_streak=jnp.zeros((), jnp.int32),
        )


def raw_key_data(key) -> jax.Array:
    """The ``uint32`` data of ``key``; typed keys must use the default PRNG implementation.

    The state stores raw key data so that checkpoints hold plain integer arrays; the steps
    re-wrap it with ``jax.random.wrap_key_data`` (the default implementation), hence the
    check.
    """
    key = jnp.asarray(key)
    default_shape = jax.random.key_data(jax.random.key(0)).shape
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        data = jax.random.key_data(key)
        if data.shape != default_shape:
            raise ValueError(
                "TrainState: the key must use the default PRNG implementation (key data of "
                f"shape {default_shape}), got a key with data of shape {data.shape}. Make it "
                "with jax.random.key(seed).")
        return data
    if key.dtype != jnp.uint32 or key.shape != default_shape:
        raise ValueError(
            "TrainState: expected a PRNG key (jax.random.key(seed) or jax.random.PRNGKey(seed)), "
            f"got an array of dtype {key.dtype} and shape {tuple(key.shape)}.")
    return key
