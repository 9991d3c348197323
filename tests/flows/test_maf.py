"""MAF / MADE / MADE MoG / MAF MoG models against TFP and the paper's formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_probability.substrates.jax as tfp

import jflows.bijectors as jb
from jflows.bijectors import BatchNormState
from jflows.distributions import mog_made
from jflows.flows import gaussian_made, layer_params, maf, maf_bijector, maf_mog
from jflows.flows.maf import layer_input_order
from jflows.nets import MADE

tfb, tfd = tfp.bijectors, tfp.distributions
D, H, L = 4, (9, 9), 3
TOL = dict(rtol=1e-5, atol=1e-5)


def perturbed(tree, seed, scale=0.3):
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    noisy = [leaf + scale * jax.random.normal(k, leaf.shape)
             for k, leaf in zip(keys, leaves, strict=True)]
    return jax.tree_util.tree_unflatten(treedef, noisy)


def init_perturbed(model, seed=1, scale=0.3):
    """Init a model and perturb its params (eagerly: the ops' compiled kernels are shared
    by every test, while each jitted program would compile anew)."""
    params, state = model.init(jax.random.key(0))
    return perturbed(params, seed, scale), state


def layer_mades(num_layers=L):
    """The MADEs maf_bijector builds, layer 0 next to the data (orders alternate)."""
    return [MADE(D, H, input_order=layer_input_order("natural", layer))
            for layer in range(num_layers)]


def normal_log_prob(u):
    return jnp.sum(-0.5 * u**2 - 0.5 * jnp.log(2 * jnp.pi), axis=-1)


def test_layer_orders_alternate():
    assert [layer_input_order("natural", i) for i in range(3)] == ["natural", "reversed",
                                                                  "natural"]
    assert layer_input_order((1, 0, 2), 1) == (2, 0, 1)
    assert layer_input_order("random", 1) == "random"
    assert layer_input_order("natural", 1, reverse_between_layers=False) == "natural"


@pytest.mark.slow  # the bijector-level TFP test and the paper-formula test run by default
def test_maf_without_batch_norm_equals_tfp_chain_of_mafs():
    flow = maf(D, L, H, batch_norm=False)
    params, state = init_perturbed(flow)
    mades = layer_mades()

    @jax.jit  # one compilation instead of TFP's many eager ops
    def ours_and_tfp(params, x, u):
        layers = [
            tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=lambda y, m=m, i=i: tuple(
                jnp.moveaxis(m.apply({"params": layer_params(params["bijector"], i)["made"]},
                                     y), -1, 0)))
            for i, m in enumerate(mades)
        ]
        # TFP's Chain applies its list last-first in the forward direction: layer 0 is last.
        reference = tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0.0, 1.0), D),
                                                tfb.Chain(layers))
        ours = (flow.log_prob(params, state, x),
                flow.bijector.forward(params["bijector"], state["bijector"], u)[0])
        return ours, (reference.log_prob(x), reference.bijector.forward(u))

    x = jax.random.normal(jax.random.key(2), (6, D))
    u = jax.random.normal(jax.random.key(3), (6, D))
    (log_prob, sample), (tfp_log_prob, tfp_sample) = ours_and_tfp(params, x, u)
    np.testing.assert_allclose(log_prob, tfp_log_prob, **TOL)
    np.testing.assert_allclose(sample, tfp_sample, **TOL)


def reference_log_prob(mades, params, state, x, eps=1e-5):
    """The MAF paper's density with batch norm, written out layer by layer."""
    u, log_det = x, 0.0
    for i, made in enumerate(mades):
        layer, stats = layer_params(params, i), layer_params(state, i)["batch_norm"]
        out = made.apply({"params": layer["made"]}, u)
        u = (u - out[..., 0]) * jnp.exp(-out[..., 1])
        log_det = log_det - jnp.sum(out[..., 1], -1)
        norm = layer["batch_norm"]
        u = (u - stats.mean) / jnp.sqrt(stats.var + eps) * jnp.exp(norm["log_scale"]) + \
            norm["shift"]
        log_det = log_det + jnp.sum(norm["log_scale"] - 0.5 * jnp.log(stats.var + eps))
    return normal_log_prob(u) + log_det


def test_maf_with_batch_norm_equals_the_papers_formula_and_round_trips():
    flow = maf(D, L, H)
    params, state = init_perturbed(flow)
    state = jax.tree_util.tree_map(
        lambda s: s._replace(mean=s.mean + 0.2, var=s.var * 1.5), state,
        is_leaf=lambda s: isinstance(s, BatchNormState))
    x = jax.random.normal(jax.random.key(2), (6, D))
    log_prob = flow.log_prob(params, state, x)
    np.testing.assert_allclose(
        log_prob, reference_log_prob(layer_mades(), params["bijector"], state["bijector"], x),
        **TOL)
    y, sample_log_prob = flow.sample_and_log_prob(params, state, jax.random.key(4), (5,))
    np.testing.assert_allclose(sample_log_prob, flow.log_prob(params, state, y),
                               rtol=1e-4, atol=1e-4)


def test_batch_norm_training_statistics_data_parallel_and_recompute():
    flow = maf(D, 2, H, axis_name="data")
    params, state = init_perturbed(flow)
    x = 2.0 + jax.random.normal(jax.random.key(2), (8, D))
    # Two shards under a named vmap axis see the statistics of the whole batch.
    sharded = jax.vmap(lambda xs: flow.log_prob_and_state(params, state, xs, train=True),
                       axis_name="data")(x.reshape(2, 4, D))
    whole = maf(D, 2, H).log_prob_and_state(params, state, x, train=True)
    np.testing.assert_allclose(sharded[0].reshape(-1), whole[0], **TOL)
    first_shard = jax.tree_util.tree_map(lambda a: a[0], sharded[1]["bijector"])
    for i in range(2):
        new_mean = layer_params(whole[1]["bijector"], i)["batch_norm"].mean
        np.testing.assert_allclose(layer_params(first_shard, i)["batch_norm"].mean, new_mean,
                                   **TOL)
        assert not np.allclose(new_mean, layer_params(state["bijector"], i)["batch_norm"].mean)
    # Statistics from a whole data set (MAF paper): layer 0 sees MADE_0's output.
    bijector = maf(D, 2, H).bijector
    new = jb.recompute_batch_norm_statistics(bijector, params["bijector"], state["bijector"], x)
    out = layer_mades(2)[0].apply({"params": layer_params(params["bijector"], 0)["made"]}, x)
    u0 = (x - out[..., 0]) * jnp.exp(-out[..., 1])
    stats = layer_params(new, 0)["batch_norm"]
    np.testing.assert_allclose(stats.mean, u0.mean(0), **TOL)
    np.testing.assert_allclose(stats.var, u0.var(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats.decay,
                               layer_params(state["bijector"], 0)["batch_norm"].decay)


def test_conditional_maf():
    flow = maf(D, 2, H, cond_shape=(3,))
    assert flow.cond_shape == (3,)
    params, state = init_perturbed(flow)
    x = jax.random.normal(jax.random.key(2), (5, D))
    cond = jax.random.normal(jax.random.key(3), (5, 3))
    log_prob = flow.log_prob(params, state, x, cond=cond)
    assert not np.allclose(log_prob, flow.log_prob(params, state, x, cond=cond + 1.0))
    y, sample_log_prob = flow.sample_and_log_prob(params, state, jax.random.key(4), (5,),
                                                  cond=cond)
    np.testing.assert_allclose(sample_log_prob, flow.log_prob(params, state, y, cond=cond),
                               rtol=1e-4, atol=1e-4)


CONDITIONAL_MODELS = {
    "maf": lambda: maf(D, 2, H, cond_shape=(3,)),
    "maf_mog": lambda: maf_mog(D, 1, H, num_components=2, cond_shape=(3,)),
    "mog_made": lambda: mog_made(D, 2, H, cond_shape=(3,)),
}
UNCONDITIONAL_MODELS = {
    "maf": lambda: maf(D, 2, H),
    "maf_mog": lambda: maf_mog(D, 1, H, num_components=2),
    "mog_made": lambda: mog_made(D, 2, H),
}


@pytest.mark.parametrize("name", CONDITIONAL_MODELS)
def test_cond_errors_of_conditional_models(name):
    model = CONDITIONAL_MODELS[name]()
    params, state = model.init(jax.random.key(0))
    x, key = jnp.zeros((5, D)), jax.random.key(1)
    with pytest.raises(ValueError, match="pass cond"):
        model.log_prob(params, state, x)
    with pytest.raises(ValueError, match="pass cond"):
        model.sample(params, state, key, (5,))
    both = r"batch shape \(4,\).*batch shape \(5,\)|\(5,\).*batch shape \(4,\)"
    with pytest.raises(ValueError, match=both):
        model.log_prob(params, state, x, cond=jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"sample_shape \(5,\).*cond's batch shape \(4,\)"):
        model.sample(params, state, key, (5,), cond=jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"trailing shape \(3,\)"):
        model.log_prob(params, state, x, cond=jnp.zeros((5, 2)))


@pytest.mark.parametrize("name", UNCONDITIONAL_MODELS)
def test_cond_to_unconditional_models_raises(name):
    model = UNCONDITIONAL_MODELS[name]()
    params, state = model.init(jax.random.key(0))
    assert model.cond_shape is None
    with pytest.raises(ValueError, match="unconditional"):
        model.log_prob(params, state, jnp.zeros((5, D)), cond=jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(params, state, jax.random.key(1), (5,), cond=jnp.zeros((5, 3)))


@pytest.mark.parametrize("name", UNCONDITIONAL_MODELS)
def test_integer_data_equals_the_float_data(name):
    model = UNCONDITIONAL_MODELS[name]()
    params, state = init_perturbed(model)
    x = jnp.arange(3 * D).reshape(3, D) % 4 - 1
    np.testing.assert_allclose(model.log_prob(params, state, x),
                               model.log_prob(params, state, x.astype(jnp.float32)), **TOL)
    log_prob, new_state, _ = model.log_prob_and_state(params, state, x, train=True)
    assert np.all(np.isfinite(log_prob))
    assert jax.tree_util.tree_structure(new_state) == jax.tree_util.tree_structure(state)


def test_float64_data_into_a_float32_maf_is_refused():
    with jax.enable_x64(True):
        flow = maf(D, 2, H)
        params, state = flow.init(jax.random.key(0), jnp.float32)
        x64 = jnp.zeros((3, D), jnp.float64)
        with pytest.raises(TypeError, match="float64 but the model's params/state are float32"):
            flow.log_prob_and_state(params, state, x64, train=True)
        _, new_state, _ = flow.log_prob_and_state(params, state, x64.astype(jnp.float32),
                                                  train=True)
        dtypes = {leaf.dtype for leaf in jax.tree_util.tree_leaves(new_state)}
        assert dtypes == {jnp.dtype(jnp.float32)}


def test_gaussian_made_is_a_product_of_gaussian_conditionals():
    flow = gaussian_made(D, H, input_order="random", seed=3)
    params, state = init_perturbed(flow)
    assert set(layer_params(params["bijector"], 0)) == {"made"}
    made = MADE(D, H, input_order="random", seed=3)
    x = jax.random.normal(jax.random.key(2), (6, D))
    out = made.apply({"params": layer_params(params["bijector"], 0)["made"]}, x)
    expected = jnp.sum(tfd.Normal(out[..., 0], jnp.exp(out[..., 1])).log_prob(x), -1)
    np.testing.assert_allclose(flow.log_prob(params, state, x), expected, **TOL)


def mixture_outputs(made, params, x, c):
    out = np.asarray(made.apply({"params": params}, x), np.float64)
    return out[..., :c], out[..., c:2 * c], out[..., 2 * c:]


def test_mog_made_log_prob_is_the_mixture_formula():
    c = 3
    dist = mog_made(D, c, H, input_order="reversed")
    params, state = init_perturbed(dist)
    x = jax.random.normal(jax.random.key(2), (6, D))
    logits, loc, log_scale = mixture_outputs(
        MADE(D, H, params_per_dim=3 * c, input_order="reversed"), params, x, c)
    x64 = np.asarray(x, np.float64)[..., None]
    log_weights = logits - np.log(np.sum(np.exp(logits), -1, keepdims=True))
    log_normal = -0.5 * ((x64 - loc) / np.exp(log_scale)) ** 2 - log_scale - 0.5 * np.log(
        2 * np.pi)
    expected = np.sum(np.log(np.sum(np.exp(log_weights + log_normal), -1)), -1)
    np.testing.assert_allclose(dist.log_prob(params, state, x), expected, rtol=1e-5, atol=1e-4)
    assert state == () and dist.event_shape == (D,)


def mixture_cdf(logits, loc, log_scale, x):
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    z = (x[..., None] - loc) / np.exp(log_scale)
    return np.sum(weights * np.asarray(jax.scipy.stats.norm.cdf(z)), -1)


def test_mog_made_samples_follow_every_conditional():
    """Probability integral transform: F(x_i | x_<i) of samples is Uniform(0, 1) per i."""
    c, n = 3, 4000
    dist = mog_made(2, c, (8,))
    params, state = init_perturbed(dist, scale=1.0)
    x = dist.sample(params, state, jax.random.key(1), (n,))
    logits, loc, log_scale = mixture_outputs(MADE(2, (8,), params_per_dim=3 * c), params, x, c)
    x64 = np.asarray(x, np.float64)
    for i in range(2):
        pit = np.sort(mixture_cdf(logits[:, i], loc[:, i], log_scale[:, i], x64[:, i]))
        ks = np.max(np.abs(pit - (np.arange(1, n + 1) - 0.5) / n))
        assert ks < 1.63 / np.sqrt(n), f"dimension {i}: KS statistic {ks:.4f}"


def test_maf_mog_is_mog_base_on_the_maf_base_variable():
    flow = maf_mog(D, 2, H, num_components=3, cond_shape=(2,))
    params, state = init_perturbed(flow)
    bijector = maf_bijector(D, 2, H, cond_shape=(2,))
    base = mog_made(D, 3, H, cond_shape=(2,), input_order="natural", seed=2000)

    @jax.jit
    def check(params, x, cond):
        u, log_det, _ = bijector.inverse(params["bijector"], state["bijector"], x, cond=cond)
        expected = base.log_prob(params["base"], state["base"], u, cond=cond) + log_det
        y, sample_log_prob = flow.sample_and_log_prob(params, state, jax.random.key(4), (5,),
                                                      cond=cond)
        return (flow.log_prob(params, state, x, cond=cond), expected,
                sample_log_prob, flow.log_prob(params, state, y, cond=cond))

    x = jax.random.normal(jax.random.key(2), (5, D))
    cond = jax.random.normal(jax.random.key(3), (5, 2))
    log_prob, expected, sample_log_prob, log_prob_of_sample = check(params, x, cond)
    np.testing.assert_allclose(log_prob, expected, **TOL)
    np.testing.assert_allclose(sample_log_prob, log_prob_of_sample, rtol=1e-4, atol=1e-4)


def test_random_orders_unroll_the_layers():
    flow = maf(D, 3, H, input_order="random", seed=1)
    params, state = init_perturbed(flow)
    assert set(params["bijector"]) == {"layer_0", "layer_1", "layer_2"}
    assert layer_params(params["bijector"], 2) is params["bijector"]["layer_2"]

    @jax.jit
    def check(params):
        y, sample_log_prob = flow.sample_and_log_prob(params, state, jax.random.key(4), (5,))
        return sample_log_prob, flow.log_prob(params, state, y)

    np.testing.assert_allclose(*check(params), rtol=1e-4, atol=1e-4)


def test_layer_params_checks_the_layer_index():
    params, state = maf(D, 3, H).init(jax.random.key(0))
    assert layer_params(params["bijector"], 2) is params["bijector"]["last"]
    assert layer_params(state["bijector"], 1)["batch_norm"].mean.shape == (D,)
    for layer in (3, -1):
        with pytest.raises(ValueError, match=f"no layer {layer} in a stack of 3 layers"):
            layer_params(params["bijector"], layer)
    # Without batch norm the state is empty: its depth is given, and checked.
    _, stateless = jax.eval_shape(maf(D, 3, H, batch_norm=False).init, jax.random.key(0))
    assert layer_params(stateless["bijector"], 2, num_layers=3) == {"made": ()}
    with pytest.raises(ValueError, match="no layer 3 in a stack of 3 layers"):
        layer_params(stateless["bijector"], 3, num_layers=3)
    with pytest.raises(ValueError, match="pass num_layers"):
        layer_params(stateless["bijector"], 0)
    with pytest.raises(ValueError, match="num_layers=2 does not match"):
        layer_params(stateless["bijector"], 0, num_layers=2)
    with pytest.raises(ValueError, match="num_layers=4 does not match"):
        layer_params(params["bijector"], 0, num_layers=4)
    with pytest.raises(ValueError, match=r"params\['bijector'\]"):
        layer_params(params, 0)
