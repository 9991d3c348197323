"""Conditional flow matching: train an FFJORD vector field without solving the ODE.

Lipman et al. 2023, "Flow matching for generative modeling"; Tong et al. 2024, "Improving
and generalizing flow-based generative models with minibatch optimal transport" (I-CFM and
OT-CFM). A vector field ``v(t, x[, cond])`` from :mod:`jflows.nets.odenet` is regressed
onto the velocity of a per-pair Gaussian probability path; once trained, the same params
are those of an :func:`~jflows.ode.ffjord` flow, with exact log-densities and sampling.

**The path.** A pair ``(x0, x1)`` -- ``x0`` from the source (the flow's base), ``x1``
from the data, joined by a coupling ``pi`` -- and ``t ~ U(0, 1)``, ``eps ~ N(0, I)``::

    x_t = (1 - t) x0 + t x1 + sigma eps,     u_t = x1 - x0
    loss = E_{t, (x0, x1) ~ pi, eps} || v(t, x_t) - u_t ||^2   (summed over the event)

Its minimiser is the marginal field ``u(t, x) = E[x1 - x0 | x_t = x]`` (Tong et al. 2024,
theorem 3.2), whose flow carries ``p_0 = source * N(0, sigma^2 I)`` to
``p_1 = data * N(0, sigma^2 I)`` (``*``: convolution). ``sigma = 0`` is Lipman et al.'s
path with ``sigma_min = 0`` (rectified flow): then ``p_0`` is the source and ``p_1`` the
data exactly; a small ``sigma > 0`` smooths the field, and the flow from the source then
approximates ``p_1``.

**Couplings.** ``"independent"`` (I-CFM): ``pi = source x data``, the minibatch's source
draws paired with its data rows as they come. ``"ot"`` (OT-CFM): the source draws of a
minibatch are reassigned to its data rows by the exact optimal assignment for the cost
``||x0 - x1||^2`` (the minibatch 2-Wasserstein plan; a permutation for equal sizes),
computed by :func:`scipy.optimize.linear_sum_assignment` on the host through
:func:`jax.pure_callback`; straighter paths, fewer solver steps. A conditional flow's
source row ``i`` carries the condition ``c_i`` of data row ``i`` (the source is
``N x`` the minibatch's conditions), and the cost adds ``cond_weight ||c_i - c_j||^2``
(Chemseddine et al. 2024, "Conditional Wasserstein distances with applications in
Bayesian OT flow matching"): a large weight keeps pairs within equal conditions, so the
field stays a transport of the source for each condition; ``cond_weight = 0`` ignores the
conditions and biases a conditional field. Under data parallelism each device solves the
assignment of its own shard.

**Time direction.** Flow matching's ``t = 0`` is the source, ``t = 1`` the data, and
``v`` pushes source to data. :func:`cfm_flow` builds ``ffjord(v, t0=0, t1=1)`` over the
source: FFJORD's ``forward`` (base -> data, sampling) integrates ``dz/dt = v`` from
``t0 = 0`` to ``t1 = 1``, its ``inverse`` (data -> base, ``log_prob``) from 1 back to 0,
so the trained field needs no flag, no time reparametrisation and no conversion of its
params. ``log_prob`` is exact with ``exact_trace()`` (or an unbiased estimate with
``hutchinson_trace()``), and the RNODE statistics of ``train=True`` calls are available
as for any FFJORD block.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from scipy.optimize import linear_sum_assignment

from jflows.bijectors.base import sum_rightmost
from jflows.conditioning import check_cond, normalize_cond_shape
from jflows.distributions.base import DensityModel, abstract_init, check_params_and_state
from jflows.distributions.transformed import TransformedDistribution, transformed
from jflows.ode.ffjord import ffjord

COUPLINGS = ("independent", "ot")

LossFn = Callable[..., tuple[jax.Array, tuple[object, dict]]]


def cfm_flow(vector_field: nn.Module, source: DensityModel, *,
             cond_shape: tuple[int, ...] | None = None, **ffjord_kwargs
             ) -> TransformedDistribution:
    """The FFJORD flow of a flow-matching field: ``transformed(source, ffjord(v, t0=0, t1=1))``.

    Its params ``{'base': source params, 'bijector': v's Flax variables}`` are what
    :func:`cfm_loss` trains, so the trained params give exact ``log_prob`` and ``sample``
    as they are (see the module docstring for the time direction).

    Args:
      vector_field: a :mod:`jflows.nets.odenet` module ``v(t, x[, cond])``.
      source: the fixed source density ``p_0``, e.g. ``standard_normal((d,))`` or
        ``diag_normal((d,), loc=0.0, scale=s)``; unconditional, with no learnable params
        (flow matching does not train the source).
      cond_shape: per-event shape of ``cond`` for a conditional field.
      **ffjord_kwargs: solver, tolerances, trace estimators, RNODE weights, ... of
        :func:`~jflows.ode.ffjord`; not ``t0``/``t1`` (fixed by the convention above) nor
        ``event_ndims`` (the source's event rank).
    """
    fixed = sorted({"t0", "t1", "event_ndims", "cond_shape"} & set(ffjord_kwargs))
    if fixed:
        raise ValueError(
            f"cfm_flow: {fixed} are fixed by flow matching (t0=0 source, t1=1 data, "
            "event_ndims from the source, cond_shape as its own argument); got them in "
            "ffjord_kwargs.")
    if source.cond_shape is not None:
        raise ValueError(f"cfm_flow: the source must be unconditional, got one with "
                         f"cond_shape {source.cond_shape}.")
    learnable = jax.tree_util.tree_leaves(jax.eval_shape(source.init, jax.random.key(0))[0])
    if learnable:
        raise ValueError(
            "cfm_flow: flow matching does not train the source, so it must have no "
            "learnable params (give diag_normal a fixed loc and scale); got params with "
            f"{len(learnable)} leaves.")
    cond_shape = normalize_cond_shape(cond_shape, "cfm_flow")
    block = ffjord(vector_field, event_ndims=len(source.event_shape), cond_shape=cond_shape,
                   t0=0.0, t1=1.0, **ffjord_kwargs)
    return transformed(source, block, cond_shape=cond_shape)


def conditional_path(x0: jax.Array, x1: jax.Array, t: jax.Array, eps: jax.Array,
                     sigma: float) -> tuple[jax.Array, jax.Array]:
    """``(x_t, u_t) = ((1 - t) x0 + t x1 + sigma eps, x1 - x0)``; ``t`` has the batch shape."""
    t = jnp.reshape(t, t.shape + (1,) * (x0.ndim - t.ndim))
    return (1 - t) * x0 + t * x1 + sigma * eps, x1 - x0


def _assignment_on_host(cost: np.ndarray) -> np.ndarray:
    """The optimal permutation of a square cost matrix (rows = source, columns = data)."""
    rows, columns = linear_sum_assignment(np.asarray(cost, np.float64))
    permutation = np.empty_like(columns)
    permutation[columns] = rows  # data row j is paired with source row permutation[j]
    return permutation.astype(np.int32)


def ot_assignment(cost: jax.Array) -> jax.Array:
    """The exact optimal assignment of an ``(n, n)`` cost matrix: ``perm`` with data row
    ``j`` paired with source row ``perm[j]``, minimising ``sum_j cost[perm[j], j]``.

    :func:`scipy.optimize.linear_sum_assignment` on the host (``jax.pure_callback``; under
    ``vmap`` one call per matrix). No gradient flows through the assignment.
    """
    if cost.ndim != 2 or cost.shape[0] != cost.shape[1]:
        raise ValueError(f"ot_assignment: expected a square (n, n) cost matrix, got shape "
                         f"{tuple(cost.shape)}.")
    return jax.pure_callback(_assignment_on_host,
                             jax.ShapeDtypeStruct(cost.shape[:1], jnp.int32),
                             jax.lax.stop_gradient(cost), vmap_method="sequential")


def _squared_distances(a: jax.Array, b: jax.Array) -> jax.Array:
    """``||a_i - b_j||^2`` of two batches of flattened events: ``(n, m)``."""
    a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    return jnp.sum(jnp.square(a[:, None, :] - b[None, :, :]), axis=-1)


def ot_pairs(x0: jax.Array, x1: jax.Array, cond: jax.Array | None = None,
             cond_weight: float = 0.0) -> jax.Array:
    """``x0`` reordered so that row ``j`` is the source draw assigned to data row ``j`` by
    the minibatch OT plan for ``||x0_i - x1_j||^2 + cond_weight ||c_i - c_j||^2``."""
    cost = _squared_distances(x0, x1)
    if cond is not None and cond_weight:
        cost = cost + cond_weight * _squared_distances(cond, cond)
    return x0[ot_assignment(cost)]


def _split_batch(batch, cond_shape, name):
    """``(x, cond)`` from an array (unconditional) or a ``{'x', 'cond'}`` dict."""
    if cond_shape is None:
        if isinstance(batch, dict):
            raise ValueError(f"{name}: an unconditional flow takes batches of data arrays, "
                             f"got a dict with keys {sorted(batch)}.")
        return batch, None
    if not (isinstance(batch, dict) and set(batch) == {"x", "cond"}):
        got = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(f"{name}: a conditional flow takes batches {{'x': data, 'cond': "
                         f"conditions}}, got {got}.")
    return batch["x"], batch["cond"]


def cfm_loss(flow: TransformedDistribution, vector_field: nn.Module, *, sigma: float = 0.0,
             coupling: str = "independent", cond_weight: float | None = None) -> LossFn:
    """The CFM training loss ``loss_fn(params, model_state, batch, key)`` of ``flow``.

    The signature of :func:`jflows.train.make_train_step`; one step draws ``t``, the
    source points and the path noise for the minibatch and evaluates ``v`` once per row:
    no ODE solve. ``params``/``model_state`` are ``flow``'s (``flow.init``), the returned
    state is unchanged, and the metrics are ``cfm`` (the loss) and ``pair_cost`` (the
    mean ``||x1 - x0||^2`` of the coupled pairs, which OT coupling lowers).

    Args:
      flow: from :func:`cfm_flow` with ``vector_field``.
      vector_field: the field ``flow`` was built with.
      sigma: the path's noise level ``sigma >= 0``.
      coupling: ``"independent"`` (I-CFM) or ``"ot"`` (OT-CFM).
      cond_weight: OT-CFM of a conditional flow: the weight of the conditions' distance in
        the assignment cost (required there; see the module docstring). ``None`` elsewhere.

    Batches are data arrays ``(B, *event)`` (``B >= 1``), or ``{'x': data, 'cond':
    (B, *cond_shape)}`` for a conditional flow.
    """
    if not isinstance(flow, TransformedDistribution):
        raise TypeError(f"cfm_loss: flow must come from cfm_flow, got {type(flow).__name__}.")
    if coupling not in COUPLINGS:
        raise ValueError(f"cfm_loss: coupling must be one of {COUPLINGS}, got {coupling!r}.")
    if not float(sigma) >= 0.0:
        raise ValueError(f"cfm_loss: sigma must be >= 0, got {sigma!r}.")
    cond_shape = flow.cond_shape
    needs_weight = coupling == "ot" and cond_shape is not None
    if needs_weight and (cond_weight is None or not float(cond_weight) >= 0.0):
        raise ValueError(
            "cfm_loss: OT coupling of a conditional flow pairs source and data rows across "
            "conditions unless the conditions enter the cost: pass cond_weight >= 0 (large: "
            f"pairs within equal conditions; 0: ignore them, biased), got {cond_weight!r}.")
    if not needs_weight and cond_weight is not None:
        raise ValueError("cfm_loss: cond_weight applies only to coupling='ot' of a "
                         f"conditional flow, got cond_weight={cond_weight!r}.")
    event_ndims = len(flow.event_shape)
    expected = abstract_init(flow.init)

    def field(params, t, x, cond):
        if cond is None:
            return vector_field.apply(params, t, x)
        return vector_field.apply(params, t, x, cond)

    def loss_fn(params, model_state, batch, key):
        check_params_and_state(expected, params, model_state, "cfm_loss")
        x1, cond = _split_batch(batch, cond_shape, "cfm_loss")
        if x1.ndim != event_ndims + 1 or x1.shape[1:] != tuple(flow.event_shape):
            raise ValueError(f"cfm_loss: expected data of shape (B, *{flow.event_shape}), "
                             f"got {tuple(x1.shape)}.")
        cond = check_cond(cond, cond_shape, x1.shape[:1], "cfm_loss")
        source_key, time_key, noise_key = jax.random.split(key, 3)
        x0 = flow.base.sample(params["base"], model_state["base"], source_key, x1.shape[:1])
        x0 = jax.lax.stop_gradient(x0.astype(x1.dtype))
        if coupling == "ot":
            x0 = ot_pairs(x0, x1, cond, cond_weight or 0.0)
        t = jax.random.uniform(time_key, x1.shape[:1], x1.dtype)
        eps = jax.random.normal(noise_key, x1.shape, x1.dtype)
        xt, ut = conditional_path(x0, x1, t, eps, sigma)
        # v(t, x) takes a scalar t: one evaluation per row, vectorised over the batch.
        per_row = jax.vmap(lambda ti, xi, ci: field(params["bijector"], ti, xi, ci),
                           in_axes=(0, 0, None if cond is None else 0))
        residual = per_row(t, xt, cond) - ut
        loss = jnp.mean(sum_rightmost(jnp.square(residual), event_ndims))
        pair_cost = jnp.mean(sum_rightmost(jnp.square(ut), event_ndims))
        return loss, (model_state, {"cfm": loss, "pair_cost": pair_cost})

    return loss_fn
