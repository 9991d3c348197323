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
dimension at a time in compiled loops by the one autoregressive solver,
:func:`jflows.nets.autoregressive.solve_autoregressive`: with a jflows MADE it evaluates
the network incrementally, one degree block per dimension, about one network pass in all
(:mod:`jflows.nets.made_sampling`); any other conditioner runs ``D`` full passes. The
per-dimension step is the transformer's ``forward``, its log-det summed over dimensions.

**Transformers.** The affine map above is one
:class:`jflows.nets.autoregressive.Transformer` (:func:`affine_transformer`, ``K = 2``
parameters per dimension: shift, raw log-scale). Any other elementwise bijection with
``K`` parameters per dimension plugs in with ``transformer=`` (the conditioner then gives
``K`` per dimension), with the same solver for its sampling direction and one conditioner
pass for its density::

    x_i = transformer.forward(theta_i(x), u_i),    theta = conditioner(x)  (..., D, K)

The IAF bijector (Kingma et al. 2016) is the inverse, ``invert(maf)``, as TFP's
``tfb.Invert(tfb.MaskedAutoregressiveFlow(...))``: its ``forward`` is the one-pass map
``y_i = (x_i - shift_i(x)) * exp(-log_scale_i(x))`` with the conditioner reading the
*input* ``x``, its ``inverse`` (the IAF's density direction) the sampling loop above.

Optional bounded log-scale: ``log_scale = b * tanh(raw / b)`` keeps every scale in
``[exp(-b), exp(b)]`` while equal to the raw output near 0.

Conditioners: a :class:`jflows.nets.MADE` with ``params_per_dim=2`` (outputs
``[..., 0]`` = shift, ``[..., 1]`` = raw log-scale; its ``cond_shape`` is the bijector's),
or any pure function ``conditioner(params, x, cond) -> (shift, log_scale)`` (or one array
``(..., D, K)``) with its own ``init(key, x) -> params`` (as TFP's
``shift_and_log_scale_fn``, with explicit params) and ``cond_shape=`` when it reads a
``cond``. A user function must be autoregressive; this is not checked. ``cond`` is checked
by :func:`jflows.conditioning.check_cond`; its batch shape broadcasts with the data's.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jflows.bijectors.base import EMPTY, Bijector, check_event_rank
from jflows.bijectors.combinators import invert
from jflows.conditioning import cond_batch_shape
from jflows.nets.autoregressive import (
    SAMPLING,
    Transformer,
    as_conditioner,
    check_conditioner_inputs,
    solve_autoregressive,
)


def bound_log_scale(raw: jax.Array, bound: float | None) -> jax.Array:
    """``bound * tanh(raw / bound)``, or ``raw`` when ``bound`` is None."""
    return raw if bound is None else bound * jnp.tanh(raw / bound)


def affine_transformer(log_scale_bound: float | None = None) -> Transformer:
    """The MAF's per-dimension map, ``theta = (shift, raw log-scale)``::

        forward:  x = u exp(s) + shift,    log|dx/du| = s
        inverse:  u = (x - shift) exp(-s), log|du/dx| = -s

    with ``s = bound_log_scale(raw, log_scale_bound)``.
    """
    if log_scale_bound is not None and not log_scale_bound > 0:
        raise ValueError(
            f"affine_transformer: log_scale_bound must be None or > 0, got {log_scale_bound}."
        )

    def forward(theta, u):
        log_scale = bound_log_scale(theta[..., 1], log_scale_bound)
        return u * jnp.exp(log_scale) + theta[..., 0], log_scale

    def inverse(theta, x):
        log_scale = bound_log_scale(theta[..., 1], log_scale_bound)
        return (x - theta[..., 0]) * jnp.exp(-log_scale), -log_scale

    return Transformer(2, forward, inverse)


def softplus_affine_transformer(min_scale: float = 1e-2) -> Transformer:
    """An affine map scaled by a softplus in the density direction, ``theta = (shift, raw)``::

        inverse:  u = x s + shift,      log|du/dx| = log s
        forward:  x = (u - shift) / s,  log|dx/du| = -log s

    with ``s = softplus(raw + softplus^-1(1 - min_scale)) + min_scale`` (``s = 1`` at
    ``raw = 0``, ``s >= min_scale``): FlowJAX's default MAF transformer (its ``Affine`` with
    a minimum scale; the MAF paper's :func:`affine_transformer` is ``exp``-parametrised).
    ``s`` grows linearly in ``raw`` rather than exponentially, so ``ds/draw <= 1`` and a
    large step cannot blow a scale up: on the two moons a ReLU MAF with it reached a test
    NLL about 0.1 nats better than with :func:`affine_transformer` on the same budget
    (BENCHMARKS.md, one-call fitting).
    """
    if not 0.0 <= min_scale < 1.0:
        raise ValueError(f"softplus_affine_transformer: min_scale must be in [0, 1), got "
                         f"{min_scale}.")
    offset = float(jnp.log(jnp.expm1(1.0 - min_scale)))  # softplus(offset) = 1 - min_scale

    def density_scale(theta):
        return jax.nn.softplus(theta[..., 1] + offset) + min_scale

    def forward(theta, u):
        scale = density_scale(theta)
        return (u - theta[..., 0]) / scale, -jnp.log(scale)

    def inverse(theta, x):
        scale = density_scale(theta)
        return x * scale + theta[..., 0], jnp.log(scale)

    return Transformer(2, forward, inverse)


def masked_autoregressive(
    conditioner,
    *,
    init: Callable | None = None,
    cond_shape=None,
    log_scale_bound: float | None = None,
    transformer: Transformer | None = None,
    sampling: str = "auto",
) -> Bijector:
    """The MAF bijector (event: the last axis); see the module docstring for the math.

    Args:
      conditioner: a :class:`jflows.nets.MADE` (``params_per_dim`` = the transformer's,
        2 for the affine one) or a pure function ``(params, x, cond) -> (shift,
        log_scale)`` (generally: a tuple of ``K`` arrays of ``x``'s shape or one array
        ``x.shape + (K,)``), autoregressive in ``x``.
      init: for a function conditioner, ``(key, x) -> params`` (default: no params).
      cond_shape: for a function conditioner that reads ``cond``, its per-event shape
        (default None: unconditional). A MADE's is its own.
      log_scale_bound: if given, ``log_scale = b * tanh(raw / b)`` (affine transformer).
      transformer: the per-dimension map (:class:`jflows.nets.autoregressive.Transformer`);
        default :func:`affine_transformer` with ``log_scale_bound``.
      sampling: how ``forward`` solves the autoregression. ``"auto"``: the degree-blocked
        incremental evaluation (about one network pass) when the conditioner is a jflows
        MADE, else ``D`` full passes; ``"passes"``: always ``D`` full passes.

    Params are the conditioner's; the state is empty.
    """
    name = "masked_autoregressive"
    if transformer is None:
        transformer = affine_transformer(log_scale_bound)
    elif log_scale_bound is not None:
        raise ValueError(f"{name}: log_scale_bound is an option of the default affine "
                         "transformer; bound the parameters inside your transformer instead.")
    if sampling not in SAMPLING:
        raise ValueError(f"{name}: sampling must be one of {SAMPLING}, got {sampling!r}.")
    net = as_conditioner(conditioner, init=init, params_per_dim=transformer.params_per_dim,
                         cond_shape=cond_shape, name=name)

    def init_fn(key, x):
        check_event_rank(x, 1, name)
        return net.init(key, x), EMPTY

    def checked(x, cond, what):
        """``x`` broadcast to the batch shape it shares with ``cond``, and ``cond``."""
        check_event_rank(x, 1, f"{name}.{what}")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"{name}.{what}: expected real-valued input, got dtype {x.dtype}; "
                            "cast it (x.astype(jnp.float32)). Density models built on this "
                            "bijector (jflows.flows.maf, transformed) cast integer data "
                            "themselves.")
        cond = check_conditioner_inputs(net, x.shape, cond, f"{name}.{what}")
        if cond is None:
            return x, cond
        batch = cond_batch_shape(cond, net.cond_shape, x.shape[:-1], f"{name}.{what}")
        return jnp.broadcast_to(x, batch + x.shape[-1:]), cond

    # Jitted once per bijector (inlined under an outer jit): eager calls, as in tests and
    # interactive use, then compile the sampling loop once instead of at every call.
    @jax.jit
    def sampling_direction(params, u, cond):
        x, log_det = solve_autoregressive(net, params, transformer.forward, u, u.shape, cond,
                                          method=sampling, name=f"{name}.forward")
        return x, jnp.sum(log_det, axis=-1)

    @jax.jit
    def density_direction(params, x, cond):
        u, log_det = transformer.inverse(net.apply(params, x, cond), x)
        return u, jnp.sum(log_det, axis=-1)

    def forward(params, state, u, *, cond=None, train=False, key=None):
        del train, key
        return (*sampling_direction(params, *checked(u, cond, "forward")), state)

    def inverse(params, state, x, *, cond=None, train=False, key=None):
        del train, key
        return (*density_direction(params, *checked(x, cond, "inverse")), state)

    return Bijector(init_fn, forward, inverse, 1, cond_shape=net.cond_shape)


def inverse_autoregressive(
    conditioner,
    *,
    init: Callable | None = None,
    cond_shape=None,
    log_scale_bound: float | None = None,
    transformer: Transformer | None = None,
    sampling: str = "auto",
) -> Bijector:
    """The IAF bijector: ``invert(masked_autoregressive(...))``: one-pass ``forward``, and
    an ``inverse`` (its density direction) solved as ``sampling`` says."""
    return invert(masked_autoregressive(conditioner, init=init, cond_shape=cond_shape,
                                        log_scale_bound=log_scale_bound,
                                        transformer=transformer, sampling=sampling))
