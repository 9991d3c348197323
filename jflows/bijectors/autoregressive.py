"""Masked autoregressive flow (MAF) and inverse autoregressive flow (IAF) bijectors.

Convention (the same as TFP's ``tfb.MaskedAutoregressiveFlow``). A conditioner maps a
vector ``v`` of size ``D`` to ``(shift(v), log_scale(v))``, both of size ``D``, with
``shift_i`` and ``log_scale_i`` depending only on the ``v_j`` that come before ``i`` in
the autoregressive order. The MAF bijector is, with ``x`` the data and ``u`` the base
variable,

* ``forward`` (sampling, base -> data), solved one dimension at a time::

      x_i = u_i * exp(log_scale_i(x)) + shift_i(x)
      log|det dx/du| = sum_i log_scale_i(x)

* ``inverse`` (density, data -> base), one conditioner pass::

      u_i = (x_i - shift_i(x)) * exp(-log_scale_i(x))
      log|det du/dx| = -sum_i log_scale_i(x)

This is the MAF paper's density direction ``u_i = (x_i - m_i) exp(-alpha_i)`` (its
Eq. 4-5, with ``m = shift``, ``alpha = log_scale``). The sampling direction is solved one
dimension at a time in compiled loops (:func:`jax.lax.fori_loop`). With a jflows MADE it
evaluates the network incrementally, one degree block per dimension, about one network
pass in all
(:mod:`jflows.nets.made_sampling`). Any other conditioner runs ``D`` full passes: after
pass ``k`` the first ``k`` dimensions in the order are exact, so after ``D`` passes all
are, and the last pass's ``log_scale`` (computed from inputs whose relevant entries are
already exact) gives the log-det.

The IAF bijector (Kingma et al. 2016) is the inverse, ``invert(maf)``, as TFP's
``tfb.Invert(tfb.MaskedAutoregressiveFlow(...))``: its ``forward`` is the one-pass map
``y_i = (x_i - shift_i(x)) * exp(-log_scale_i(x))`` with the conditioner reading the
*input* ``x``, its ``inverse`` (the IAF's density direction) the sampling loop above.

Optional bounded log-scale: ``log_scale = b * tanh(raw / b)`` keeps every scale in
``[exp(-b), exp(b)]`` while equal to the raw output near 0.

Conditioners: a :class:`jflows.nets.MADE` with ``params_per_dim=2`` (outputs
``[..., 0]`` = shift, ``[..., 1]`` = raw log-scale), or any pure function
``conditioner(params, x, cond) -> (shift, log_scale)`` with its own
``init(key, x) -> params`` (as TFP's ``shift_and_log_scale_fn``, with explicit params).
A user function must be autoregressive; this is not checked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jflows.bijectors.base import EMPTY, Bijector, check_event_rank
from jflows.bijectors.combinators import invert
from jflows.nets.made import MADE
from jflows.nets.made_sampling import made_solve


class Conditioner(NamedTuple):
    """A conditioner as pure functions; ``made`` is set when it is a jflows MADE."""

    init: Callable
    apply: Callable
    made: MADE | None = None


def made_conditioner(made: MADE) -> Conditioner:
    """Shift and raw log-scale from a MADE with two outputs per dimension."""
    if made.params_per_dim != 2:
        raise ValueError(
            "masked_autoregressive: the MADE must have params_per_dim=2 (shift and "
            f"log-scale per dimension), got params_per_dim={made.params_per_dim}."
        )

    def init(key, x):
        example = jnp.zeros((made.event_size,), x.dtype)
        cond = None if made.cond_size is None else jnp.zeros((made.cond_size,), x.dtype)
        return made.init(key, example, cond)["params"]

    def apply(params, x, cond):
        made.check_inputs(x, cond, "masked_autoregressive")
        out = made.apply({"params": params}, x, cond)
        return out[..., 0], out[..., 1]

    return Conditioner(init, apply, made)


def _no_params(key, x):
    del key, x
    return EMPTY


def as_conditioner(conditioner, init=None) -> Conditioner:
    """A :class:`Conditioner` from a MADE or a ``(params, x, cond)`` function + ``init``."""
    if isinstance(conditioner, Conditioner):
        return conditioner
    if isinstance(conditioner, MADE):
        if init is not None:
            raise ValueError("masked_autoregressive: init is only for function conditioners; "
                             "a MADE initialises itself.")
        return made_conditioner(conditioner)
    if not callable(conditioner):
        raise TypeError(
            "masked_autoregressive: conditioner must be a jflows.nets.MADE or a function "
            f"(params, x, cond) -> (shift, log_scale), got {type(conditioner).__name__}."
        )
    return Conditioner(init or _no_params, conditioner)


def bound_log_scale(raw: jax.Array, bound: float | None) -> jax.Array:
    """``bound * tanh(raw / bound)``, or ``raw`` when ``bound`` is None."""
    return raw if bound is None else bound * jnp.tanh(raw / bound)


def broadcast_to_cond(x: jax.Array, cond) -> jax.Array:
    """``x`` broadcast to the batch shape it shares with ``cond`` (the loop needs it fixed)."""
    if cond is None:
        return x
    batch = jnp.broadcast_shapes(x.shape[:-1], jnp.shape(cond)[:-1])
    return jnp.broadcast_to(x, batch + x.shape[-1:])


SAMPLING = ("auto", "passes")


def masked_autoregressive(
    conditioner,
    *,
    init: Callable | None = None,
    log_scale_bound: float | None = None,
    sampling: str = "auto",
) -> Bijector:
    """The MAF bijector (event: the last axis); see the module docstring for the math.

    Args:
      conditioner: a :class:`jflows.nets.MADE` (``params_per_dim=2``) or a pure function
        ``(params, x, cond) -> (shift, log_scale)``, autoregressive in ``x``.
      init: for a function conditioner, ``(key, x) -> params`` (default: no params).
      log_scale_bound: if given, ``log_scale = b * tanh(raw / b)``.
      sampling: how ``forward`` solves the autoregression. ``"auto"``: the degree-blocked
        incremental evaluation (:func:`jflows.nets.made_sampling.made_solve`, about one
        network pass) when the conditioner is a jflows MADE, else ``D`` full passes;
        ``"passes"``: always ``D`` full passes.

    Params are the conditioner's; the state is empty.
    """
    net = as_conditioner(conditioner, init)
    if log_scale_bound is not None and not log_scale_bound > 0:
        raise ValueError(
            f"masked_autoregressive: log_scale_bound must be None or > 0, got {log_scale_bound}."
        )
    if sampling not in SAMPLING:
        raise ValueError(f"masked_autoregressive: sampling must be one of {SAMPLING}, got "
                         f"{sampling!r}.")
    incremental = sampling == "auto" and net.made is not None

    def shift_and_log_scale(params, x, cond, name):
        shift, raw = net.apply(params, x, cond)
        if shift.shape != x.shape or raw.shape != x.shape:
            raise ValueError(
                f"{name}: the conditioner must return shift and log_scale of the input's "
                f"shape {tuple(x.shape)}, got {tuple(shift.shape)} and {tuple(raw.shape)}."
            )
        return shift, bound_log_scale(raw, log_scale_bound)

    def init_fn(key, x):
        check_event_rank(x, 1, "masked_autoregressive")
        return net.init(key, x), EMPTY

    # Jitted once per bijector (inlined under an outer jit): eager calls, as in tests and
    # interactive use, then compile the sampling loop once instead of at every call.
    @jax.jit
    def solve_incrementally(params, u, cond):
        made = net.made
        u_in_order = u.reshape(-1, u.shape[-1])[:, made.generation_order]

        def step(out, s):
            log_scale = bound_log_scale(out[:, 1], log_scale_bound)
            u_s = jax.lax.dynamic_index_in_dim(u_in_order, s, axis=1, keepdims=False)
            return u_s * jnp.exp(log_scale) + out[:, 0], log_scale

        x, log_scale = made_solve(made, params, step, cond, u)
        return x, jnp.sum(log_scale, axis=-1)

    @jax.jit
    def solve_by_passes(params, u, cond):
        def one_pass(_, carry):
            x, _ = carry
            shift, log_scale = shift_and_log_scale(params, x, cond, "masked_autoregressive")
            return u * jnp.exp(log_scale) + shift, log_scale

        zeros = jnp.zeros_like(u)
        x, log_scale = jax.lax.fori_loop(0, u.shape[-1], one_pass, (zeros, zeros))
        return x, jnp.sum(log_scale, axis=-1)

    @jax.jit
    def density(params, x, cond):
        shift, log_scale = shift_and_log_scale(params, x, cond, "masked_autoregressive.inverse")
        return (x - shift) * jnp.exp(-log_scale), -jnp.sum(log_scale, axis=-1)

    def forward(params, state, u, *, cond=None, train=False, key=None):
        del train, key
        check_event_rank(u, 1, "masked_autoregressive.forward")
        solve = solve_incrementally if incremental else solve_by_passes
        return (*solve(params, broadcast_to_cond(u, cond), cond), state)

    def inverse(params, state, x, *, cond=None, train=False, key=None):
        del train, key
        check_event_rank(x, 1, "masked_autoregressive.inverse")
        return (*density(params, broadcast_to_cond(x, cond), cond), state)

    return Bijector(init_fn, forward, inverse, 1)


def inverse_autoregressive(
    conditioner,
    *,
    init: Callable | None = None,
    log_scale_bound: float | None = None,
    sampling: str = "auto",
) -> Bijector:
    """The IAF bijector: ``invert(masked_autoregressive(...))``: one-pass ``forward``, and
    an ``inverse`` (its density direction) solved as ``sampling`` says."""
    return invert(masked_autoregressive(conditioner, init=init,
                                        log_scale_bound=log_scale_bound, sampling=sampling))
