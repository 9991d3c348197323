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


def _sigmoid_edge_values(low, high, dtype):
    """One float step inside each edge, then interior points, as ``dtype``."""
    low, high = dtype(low), dtype(high)
    # One step above 0 is a subnormal, which XLA flushes to zero (on CPU at least; jflows
    # and TFP alike then read it as y = low): the smallest normal number is the edge it sees.
    above_low = np.finfo(dtype).tiny if low == 0 else np.nextafter(low, high)
    interior = low + (high - low) * np.array([0.01, 0.3, 0.5, 0.9], dtype)
    return np.concatenate([[above_low, np.nextafter(high, low)], interior]).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("low", "high"), [(0.0, 1.0), (-2.0, 3.0), (10.0, 10.5)])
def test_sigmoid_is_exact_one_step_inside_its_edges(low, high, dtype):
    from tensorflow_probability.substrates import jax as tfp

    rtol, atol = (1e-5, 1e-6) if dtype == np.float32 else (1e-12, 1e-13)
    with jax.enable_x64(dtype == np.float64):
        y = jnp.asarray(_sigmoid_edge_values(low, high, dtype))
        assert y.dtype == dtype
        unit = (low, high) == (0.0, 1.0)
        b = jb.sigmoid() if unit else jb.sigmoid(low, high)

        def peer():  # a fresh TFP bijector per call: TFP caches forward/inverse pairs
            return (tfp.bijectors.Sigmoid() if unit
                    else tfp.bijectors.Sigmoid(low=dtype(low), high=dtype(high)))

        x, inv_log_det, _ = b.inverse((), (), y)
        y_back, fwd_log_det, _ = b.forward((), (), x)
        for value in (x, inv_log_det, y_back, fwd_log_det):
            assert value.dtype == dtype and np.all(np.isfinite(value)), value
        np.testing.assert_allclose(x, peer().inverse(y), rtol=rtol, atol=atol)
        np.testing.assert_allclose(inv_log_det, peer().inverse_log_det_jacobian(y, 0),
                                   rtol=rtol, atol=atol)
        np.testing.assert_allclose(fwd_log_det, peer().forward_log_det_jacobian(x, 0),
                                   rtol=rtol, atol=atol)
        np.testing.assert_allclose(fwd_log_det, -inv_log_det, rtol=rtol, atol=atol)
        np.testing.assert_allclose(y_back, peer().forward(x), rtol=rtol, atol=atol)
        # Exact round trip one step inside each edge: y = low + (high - low) * sigmoid(x)
        # would round onto high there, and so does TFP's own forward on the default (0, 1),
        # which is why exactness is checked against y itself and not against TFP. Left out:
        # y = tiny on (0, 1), where x = log(tiny) ~ -87 (float32) is itself rounded, by
        # ~|x| eps ~ 5e-6 relative in exp(x): enough to put sigmoid(x) below the smallest
        # normal, flushed to 0 by jflows and TFP alike; there is no edge to round onto there.
        edges = slice(1, 2) if low == 0 else slice(0, 2)
        np.testing.assert_array_equal(y_back[edges], y[edges])
        np.testing.assert_allclose(y_back[2:], y[2:], rtol=4 * np.finfo(dtype).eps)


def test_sigmoid_domain_check_accepts_one_step_inside_the_edges():
    b = jb.sigmoid(-2.0, 3.0, validate_args=True)
    checked = jax.jit(checkify.checkify(lambda v: b.inverse((), (), v)[0]))
    err, x = checked(jnp.asarray(_sigmoid_edge_values(-2.0, 3.0, np.float32)))
    err.throw()
    assert np.all(np.isfinite(x))
    err, _ = checked(jnp.array([0.5, 3.0]))
    with pytest.raises(checkify.JaxRuntimeError, match="strictly between low and high"):
        err.throw()
