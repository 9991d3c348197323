"""MADE MoG: an autoregressive density with a mixture of Gaussians per conditional.

The MAF paper's "MADE MoG" (Papamakarios et al. 2017, Sec. 4; Uria et al. 2016)::

    p(x | cond) = prod_i sum_c pi_ic N(x_i; mu_ic, sigma_ic^2),

with ``(logits_i, mu_i, log sigma_i) = MADE(x_{<i}, cond)`` (``pi_i = softmax(logits_i)``),
so one network pass gives the whole density. The per-dimension mixture density is TFP's
``MixtureSameFamily(Categorical, Normal)``. As the base distribution of a MAF it gives
the paper's "MAF MoG" (:func:`jflows.flows.maf_mog`).

Sampling solves the autoregression in compiled loops (:func:`jax.lax.fori_loop`), by
default with the incremental MADE evaluation (about one network pass;
:mod:`jflows.nets.made_sampling`), else with ``D`` full network passes, all drawing from
one fixed set of noise: per dimension a Gumbel vector ``g_i`` (component
``c_i = argmax_c(logits_ic + g_ic)``, an exact categorical draw) and a standard normal
``z_i`` (``x_i = mu_{i c_i} + sigma_{i c_i} z_i``). With the noise fixed, pass ``k`` makes
the first ``k`` dimensions in the order exact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import tensorflow_probability.substrates.jax as tfp

from jflows.bijectors.autoregressive import SAMPLING
from jflows.bijectors.base import check_event_shape
from jflows.distributions.base import Distribution, default_float_dtype
from jflows.nets.made import MADE
from jflows.nets.made_sampling import made_solve

tfd = tfp.distributions


def split_mixture_outputs(out: jax.Array, num_components: int):
    """``(logits, loc, log_scale)``, each ``(..., D, C)``, from MADE outputs ``(..., D, 3C)``."""
    c = num_components
    return out[..., :c], out[..., c : 2 * c], out[..., 2 * c :]


def mixture_log_prob(logits, loc, log_scale, x) -> jax.Array:
    """``log sum_c softmax(logits)_c N(x; loc_c, exp(log_scale_c)^2)`` per element of ``x``."""
    mixture = tfd.MixtureSameFamily(
        tfd.Categorical(logits=logits), tfd.Normal(loc, jnp.exp(log_scale))
    )
    return mixture.log_prob(x)


def mixture_draw(logits, loc, log_scale, gumbel, normal) -> jax.Array:
    """The draw of each element's mixture made by the fixed noise ``gumbel`` (..., C) and
    ``normal`` (...): component ``argmax(logits + gumbel)``, then ``loc + scale * normal``."""
    component = jnp.argmax(logits + gumbel, axis=-1)[..., None]
    mu = jnp.take_along_axis(loc, component, axis=-1)[..., 0]
    sigma = jnp.exp(jnp.take_along_axis(log_scale, component, axis=-1)[..., 0])
    return mu + sigma * normal


def mog_made(
    event_size: int,
    num_components: int = 10,
    hidden_sizes: Sequence[int] = (100, 100),
    *,
    activation: str | Callable = "tanh",
    input_order: str | Sequence[int] = "natural",
    hidden_degrees: str = "equal",
    cond_size: int | None = None,
    seed: int = 0,
    output_init_scale: float = 1.0,
    sampling: str = "auto",
) -> Distribution:
    """The MADE MoG density over vectors of size ``event_size`` (a :class:`Distribution`).

    The MADE options are those of :class:`jflows.nets.MADE`; ``num_components`` Gaussians
    per dimension (the MAF paper used 10). ``output_init_scale=1`` (the MAF reference
    code's scale) makes the components differ from the start. Params are the MADE's.
    With ``cond``, samples have the broadcast of ``sample_shape`` and ``cond``'s batch shape.
    ``sampling="auto"`` samples with the incremental MADE evaluation (about one network
    pass, :mod:`jflows.nets.made_sampling`), ``"passes"`` with ``D`` full passes.
    """
    if num_components < 1:
        raise ValueError(f"mog_made: num_components must be >= 1, got {num_components}.")
    if sampling not in SAMPLING:
        raise ValueError(f"mog_made: sampling must be one of {SAMPLING}, got {sampling!r}.")
    made = MADE(
        event_size,
        hidden_sizes,
        params_per_dim=3 * num_components,
        input_order=input_order,
        hidden_degrees=hidden_degrees,
        activation=activation,
        cond_size=cond_size,
        seed=seed,
        output_init_scale=output_init_scale,
    )
    event_shape = (event_size,)

    def init(key, dtype=None):
        dtype = dtype or default_float_dtype()
        cond = None if cond_size is None else jnp.zeros((cond_size,), dtype)
        return made.init(key, jnp.zeros(event_shape, dtype), cond)["params"]

    def mixture(params, x, cond, name):
        made.check_inputs(x, cond, name)
        return split_mixture_outputs(made.apply({"params": params}, x, cond), num_components)

    def log_prob(params, x, *, cond=None):
        check_event_shape(x, event_shape, "mog_made.log_prob", "the distribution's event shape")
        logits, loc, log_scale = mixture(params, x, cond, "mog_made.log_prob")
        return jnp.sum(mixture_log_prob(logits, loc, log_scale, x), axis=-1)

    # Jitted once per distribution (inlined under an outer jit), so eager sampling compiles
    # the loop once.
    @jax.jit
    def solve_by_passes(params, gumbel, normal, cond):
        def one_pass(_, x):
            logits, loc, log_scale = mixture(params, x, cond, "mog_made.sample")
            return mixture_draw(logits, loc, log_scale, gumbel, normal)

        return jax.lax.fori_loop(0, event_size, one_pass, jnp.zeros_like(normal))

    @jax.jit
    def solve_incrementally(params, gumbel, normal, cond):
        template, order = normal, made.generation_order
        gumbel = gumbel.reshape(-1, event_size, num_components)[:, order]
        normal = normal.reshape(-1, event_size)[:, order]

        def step(out, s):
            logits, loc, log_scale = split_mixture_outputs(out, num_components)
            g = jax.lax.dynamic_index_in_dim(gumbel, s, axis=1, keepdims=False)
            z = jax.lax.dynamic_index_in_dim(normal, s, axis=1, keepdims=False)
            return mixture_draw(logits, loc, log_scale, g, z), z

        return made_solve(made, params, step, cond, template)[0]

    solve = solve_incrementally if sampling == "auto" else solve_by_passes

    def sample(params, key, sample_shape=(), *, cond=None):
        shape = (sample_shape,) if isinstance(sample_shape, int) else tuple(sample_shape)
        dtype = jax.tree_util.tree_leaves(params)[0].dtype
        if cond is not None:
            shape = jnp.broadcast_shapes(shape, cond.shape[:-1])
        gumbel_key, normal_key = jax.random.split(key)
        gumbel = jax.random.gumbel(gumbel_key, (*shape, event_size, num_components), dtype)
        normal = jax.random.normal(normal_key, (*shape, event_size), dtype)
        return solve(params, gumbel, normal, cond)

    return Distribution(init, log_prob, sample, event_shape)
