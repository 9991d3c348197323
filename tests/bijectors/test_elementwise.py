"""Elementwise bijectors: closed forms, fixed vs learnable params, domain checks, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

import jflows.bijectors as jb

KEY = jax.random.key(0)


def test_fixed_constants_need_no_params_and_missing_ones_are_learnable():
    x = jnp.ones((4, 3))
    assert jb.scale(2.0).init(KEY, x) == ((), ())
    params, state = jb.scale(param_shape=(3,)).init(KEY, x)
    assert state == () and set(params) == {"log_scale"} and params["log_scale"].shape == (3,)
    params, _ = jb.affine_scalar(shift=1.0).init(KEY, x)
    assert set(params) == {"log_scale"}
    params, _ = jb.leaky_relu().init(KEY, x)
    np.testing.assert_allclose(jnp.exp(params["log_slope"]), 0.5, rtol=1e-6)


def test_learnable_params_start_at_the_identity():
    x = jax.random.normal(KEY, (4, 3))
    for b in (jb.shift(), jb.scale(), jb.affine_scalar()):
        params, state = b.init(KEY, x)
        y, log_det, _ = b.forward(params, state, x)
        np.testing.assert_array_equal(y, x)
        np.testing.assert_array_equal(log_det, jnp.zeros_like(x))


def test_leaky_relu_closed_form():
    b = jb.leaky_relu(0.25, event_ndims=1)
    x = jnp.array([[-2.0, 0.0, 3.0], [-1.0, -4.0, 1.0]])
    y, log_det, _ = b.forward((), (), x)
    np.testing.assert_allclose(y, [[-0.5, 0.0, 3.0], [-0.25, -1.0, 1.0]])
    np.testing.assert_allclose(log_det, [np.log(0.25), 2 * np.log(0.25)], rtol=1e-6)


def test_log_det_sums_over_event_ndims():
    x = jax.random.normal(KEY, (2, 3, 4))
    per_element = jb.exp().forward((), (), x)[1]
    assert per_element.shape == (2, 3, 4)
    np.testing.assert_allclose(jb.exp(event_ndims=2).forward((), (), x)[1],
                               per_element.sum(axis=(1, 2)), rtol=1e-6)


def test_parameter_that_does_not_fit_the_input_is_a_clear_error():
    b = jb.shift(param_shape=(3,))
    params, state = b.init(KEY, jnp.zeros((3,)))
    message = r"parameter 'shift' of shape \(3,\).*input of shape \(2, 4\)"
    with pytest.raises(ValueError, match=message):
        jax.jit(lambda v: b.forward(params, state, v))(jnp.zeros((2, 4)))


def test_constructor_errors():
    with pytest.raises(ValueError, match="slope must be > 0"):
        jb.leaky_relu(0.0)
    with pytest.raises(ValueError, match="both low and high"):
        jb.sigmoid(low=0.0)


@pytest.mark.parametrize(
    ("bijector", "bad"),
    [(jb.sigmoid(validate_args=True), 1.5), (jb.exp(validate_args=True), -1.0),
     (jb.tanh(validate_args=True), 1.0), (jb.normal_cdf(validate_args=True), 0.0),
     (jb.softplus(validate_args=True), 0.0)],
)
def test_out_of_domain_inverse_is_reported_on_request(bijector, bad):
    y = jnp.array([0.5, bad]) if bad != 0.5 else jnp.array([bad])
    checked = jax.jit(checkify.checkify(lambda v: bijector.inverse((), (), v)[0]))
    err, _ = checked(y)
    with pytest.raises(checkify.JaxRuntimeError, match="inverse expects inputs"):
        err.throw()
    err, _ = checked(jnp.array([0.5, 0.25]))
    err.throw()  # in-domain inputs pass


def test_out_of_domain_without_validation_gives_nan_as_documented():
    assert np.isnan(jb.sigmoid().inverse((), (), jnp.array(1.5))[0])
