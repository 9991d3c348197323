"""MADE MoG: an autoregressive density with a mixture of Gaussians per conditional.

The MAF paper's "MADE MoG" (Papamakarios et al. 2017, Sec. 4; Uria et al. 2016)::

    p(x | cond) = prod_i sum_c pi_ic N(x_i; mu_ic, sigma_ic^2),

with ``(logits_i, mu_i, log sigma_i) = MADE(x_{<i}, cond)`` (``pi_i = softmax(logits_i)``),
so one network pass gives the whole density. The per-dimension mixture density is TFP's
``MixtureSameFamily(Categorical, Normal)``. As the base distribution of a MAF it gives
the paper's "MAF MoG" (:func:`jflows.flows.maf_mog`).

Sampling solves the autoregression with the one autoregressive solver
(:func:`jflows.nets.autoregressive.solve_autoregressive`): by default the incremental MADE
evaluation (about one network pass; :mod:`jflows.nets.made_sampling`), else ``D`` full
network passes, all drawing from one fixed set of noise. Its per-dimension step is the
mixture draw: with a Gumbel vector ``g_i`` and a standard normal ``z_i`` per dimension,
component ``c_i = argmax_c(logits_ic + g_ic)`` (an exact categorical draw) and
``x_i = mu_{i c_i} + sigma_{i c_i} z_i``; the step also returns
``log p(x_i | x_{<i}, cond)``, so ``sample_and_log_prob`` costs one solve.

``cond`` (``cond_shape=(C,)``) follows :mod:`jflows.conditioning`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import tensorflow_probability.substrates.jax as tfp

from jflows.bijectors.base import check_event_shape
from jflows.conditioning import sample_batch_shape
from jflows.distributions.base import (
    Distribution,
    abstract_init,
    check_data_dtype,
    check_init_dtype,
    check_key,
    check_params_and_state,
    log_prob_from,
    model_dtype,
)
from jflows.nets.autoregressive import (
    SAMPLING,
    check_conditioner_inputs,
    made_conditioner,
    solve_autoregressive,
)
from jflows.nets.made import MADE

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


def mixture_step(num_components: int):
    """The solver's per-dimension step: ``(theta_i, (gumbel_i, normal_i)) ->
    (x_i, log p(x_i | theta_i))`` with ``theta_i`` the ``3 C`` MADE outputs of dimension i."""

    def step(theta, noise):
        logits, loc, log_scale = split_mixture_outputs(theta, num_components)
        x = mixture_draw(logits, loc, log_scale, *noise)
        return x, mixture_log_prob(logits, loc, log_scale, x)

    return step


def mog_made(
    event_size: int,
    num_components: int = 10,
    hidden_sizes: Sequence[int] = (100, 100),
    *,
    activation: str | Callable = "tanh",
    input_order: str | Sequence[int] = "natural",
    hidden_degrees: str = "equal",
    cond_shape=None,
    seed: int = 0,
    output_init_scale: float = 1.0,
    sampling: str = "auto",
) -> Distribution:
    """The MADE MoG density over vectors of size ``event_size`` (a :class:`Distribution`).

    The MADE options are those of :class:`jflows.nets.MADE` (``cond_shape=(C,)`` for a
    conditional MADE MoG); ``num_components`` Gaussians per dimension (the MAF paper used
    10). ``output_init_scale=1`` (the MAF reference code's scale) makes the components
    differ from the start. Params are the MADE's; the state is ``()``. With ``cond``,
    samples have the broadcast of ``sample_shape`` and ``cond``'s batch shape.
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
        cond_shape=cond_shape,
        seed=seed,
        output_init_scale=output_init_scale,
    )
    conditioner = made_conditioner(made)
    step = mixture_step(num_components)
    event_shape = (event_size,)

    def init(key, dtype=None):
        check_key(key, "mog_made.init")
        dtype = check_init_dtype(dtype, "mog_made.init")
        return conditioner.init(key, jax.ShapeDtypeStruct(event_shape, dtype)), ()

    expected = abstract_init(init)

    def log_prob_and_state(params, state, x, *, cond=None, train=True, key=None):
        del train, key
        name = "mog_made.log_prob"
        check_params_and_state(expected, params, state, name)
        x = check_data_dtype(x, params, state, name)
        check_event_shape(x, event_shape, name, "the distribution's event shape")
        cond = check_conditioner_inputs(conditioner, x.shape, cond, name)
        theta = conditioner.apply(params, x, cond)
        logits, loc, log_scale = split_mixture_outputs(theta, num_components)
        return jnp.sum(mixture_log_prob(logits, loc, log_scale, x), axis=-1), state, ()

    # Jitted once per distribution (inlined under an outer jit), so eager sampling compiles
    # the loop once.
    @jax.jit
    def solve(params, noise, cond):
        x, log_probs = solve_autoregressive(conditioner, params, step, noise, noise[1].shape,
                                            cond, method=sampling, name="mog_made.sample")
        return x, jnp.sum(log_probs, axis=-1)

    def draw(params, state, key, sample_shape, cond, name):
        check_key(key, name)
        check_params_and_state(expected, params, state, name)
        shape, cond = sample_batch_shape(sample_shape, cond, made.cond_shape, name)
        dtype = model_dtype(params, state)
        gumbel_key, normal_key = jax.random.split(key)
        noise = (jax.random.gumbel(gumbel_key, (*shape, event_size, num_components), dtype),
                 jax.random.normal(normal_key, (*shape, event_size), dtype))
        return solve(params, noise, cond)

    def sample(params, state, key, sample_shape=(), *, cond=None):
        return draw(params, state, key, sample_shape, cond, "mog_made.sample")[0]

    def sample_and_log_prob(params, state, key, sample_shape=(), *, cond=None):
        return draw(params, state, key, sample_shape, cond, "mog_made.sample_and_log_prob")

    return Distribution(init, log_prob_from(log_prob_and_state), log_prob_and_state, sample,
                        sample_and_log_prob, event_shape, made.cond_shape)
