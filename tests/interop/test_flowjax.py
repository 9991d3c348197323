"""The FlowJAX bridges: FlowJAX bijections/flows in jflows, jflows bijectors in FlowJAX."""

import equinox as eqx
import flowjax.bijections as fb
import flowjax.distributions as fd
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flowjax.flows import masked_autoregressive_flow
from flowjax.train import fit_to_data

import jflows.bijectors as jb
import jflows.distributions as jd
from jflows.interop import flowjax as jfj

X = jax.random.normal(jax.random.key(1), (4, 3))
COND = jax.random.normal(jax.random.key(2), (4, 2))


@pytest.fixture(scope="module")
def flow():
    return masked_autoregressive_flow(jax.random.key(0), base_dist=fd.Normal(jnp.zeros(3)),
                                      cond_dim=2, nn_width=8, flow_layers=2)


def test_flowjax_distribution_in_jflows(flow):
    model = jfj.from_distribution(flow)
    params, state = model.init(jax.random.key(0))
    assert model.cond_shape == (2,) and model.event_shape == (3,)
    np.testing.assert_allclose(model.log_prob(params, state, X, cond=COND),
                               flow.log_prob(X, COND), rtol=1e-6)
    x, log_prob = model.sample_and_log_prob(params, state, jax.random.key(3), cond=COND)
    assert x.shape == (4, 3)
    np.testing.assert_allclose(log_prob, flow.log_prob(x, COND), rtol=1e-4, atol=1e-4)
    # The params are FlowJAX's own trainable partition: the gradient is FlowJAX's.
    grads = jax.grad(lambda p: model.log_prob(p, state, X, cond=COND).sum())(params)
    trainable, static = eqx.partition(flow, eqx.is_inexact_array)
    expected = jax.grad(lambda t: eqx.combine(t, static).log_prob(X, COND).sum())(trainable)
    for g, e in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(expected),
                    strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_flowjax_bijection_in_jflows_chain(flow):
    bijector = jfj.from_bijection(flow.bijection)
    assert (bijector.event_ndims, bijector.cond_shape) == (1, (2,))
    model = jd.transformed(jd.standard_normal((3,)), jb.chain(bijector, jb.shift(0.5)))
    params, state = model.init(jax.random.key(0))
    np.testing.assert_allclose(model.log_prob(params, state, X + 0.5, cond=COND),
                               flow.log_prob(X, COND), rtol=1e-5)
    y, log_det, _ = bijector.forward(params["bijector"][0], (), X, cond=COND[0])
    expected = jax.vmap(lambda x: flow.bijection.transform_and_log_det(x, COND[0]))(X)
    np.testing.assert_allclose(y, expected[0], rtol=1e-6)
    np.testing.assert_allclose(log_det, expected[1], rtol=1e-6)


def test_jflows_bijector_as_flowjax_bijection_trains_with_flowjax():
    bijector = jb.chain(jb.affine_tril_lowrank(rank=1), jb.leaky_relu())
    params, state = bijector.init(jax.random.key(0), X)
    bijection = jfj.to_bijection(bijector, params, state, shape=(3,))
    y, log_det = bijection.transform_and_log_det(X[0])
    np.testing.assert_allclose(y, bijector.forward(params, state, X[0])[0], rtol=1e-6)
    np.testing.assert_allclose(log_det, bijector.forward(params, state, X[0])[1], rtol=1e-6)
    np.testing.assert_allclose(bijection.inverse(y), X[0], rtol=1e-4, atol=1e-5)
    model = fd.Transformed(fd.Normal(jnp.zeros(3)), bijection)
    data = 2.0 * jax.random.normal(jax.random.key(5), (256, 3)) + 1.0
    trained, losses = fit_to_data(jax.random.key(0), model, data, max_epochs=5,
                                  show_progress=False)
    assert np.isfinite(losses["train"]).all() and losses["train"][-1] < losses["train"][0]
    assert not np.allclose(trained.bijection.params[0]["shift"], params[0]["shift"])
    # An elementwise jflows bijector on FlowJAX vector events: log-det summed.
    exp = jfj.to_bijection(jb.exp(), (), (), shape=(3,))
    np.testing.assert_allclose(exp.transform_and_log_det(X[0])[1], X[0].sum(), rtol=1e-6)


def test_clear_errors():
    with pytest.raises(TypeError, match="AbstractBijection"):
        jfj.from_bijection(jb.exp())
    with pytest.raises(ValueError, match="shape-preserving"):
        jfj.to_bijection(jb.reshape((3,), (3, 1)), (), (), shape=(3,))
    affine = jfj.from_bijection(fb.Affine(jnp.zeros(3)))
    params, state = affine.init(jax.random.key(0), X)
    with pytest.raises(ValueError, match="unconditional"):
        affine.forward(params, state, X, cond=COND)
