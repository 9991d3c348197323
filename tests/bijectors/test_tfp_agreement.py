"""Every catalogue entry that TFP has agrees with TFP-JAX on the same parameters (float32)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_probability.substrates.jax as tfp

import jflows.bijectors as jb

tfb = tfp.bijectors
tf_linalg = tfp.tf2jax.linalg

RTOL = 1e-5
ATOL = 1e-5
KEY = jax.random.key(7)


def _normal(shape, seed=0):
    return jax.random.normal(jax.random.fold_in(KEY, seed), shape, jnp.float32)


def _unit(shape):
    return jax.random.uniform(jax.random.fold_in(KEY, 1), shape, minval=0.01, maxval=0.99)


V3 = _normal((6,), 10)  # fill_triangular vector for D = 3
U3 = 0.5 * _normal((3, 2), 11)
B3 = _normal((3,), 12)


def _low_rank_tfp(tril, update, shift):
    operator = tf_linalg.LinearOperatorLowRankUpdate(
        tf_linalg.LinearOperatorLowerTriangular(tril), u=update
    )
    return tfb.Chain([tfb.Shift(shift), tfb.ScaleMatvecLinearOperator(operator)])


# (id, jflows bijector, its params, TFP bijector, event_ndims, input sampler for forward,
#  input sampler for inverse)
CASES = [
    ("shift", jb.shift(1.5), (), tfb.Shift(1.5), 0, _normal, _normal),
    ("shift_learnable", jb.shift(param_shape=(3,)), {"shift": B3}, tfb.Shift(B3), 0, _normal,
     _normal),
    ("scale", jb.scale(-2.5), (), tfb.Scale(-2.5), 0, _normal, _normal),
    ("scale_learnable", jb.scale(param_shape=(3,)), {"log_scale": B3}, tfb.Scale(log_scale=B3),
     1, _normal, _normal),
    ("affine_scalar", jb.affine_scalar(0.5, -3.0), (),
     tfb.Chain([tfb.Shift(0.5), tfb.Scale(-3.0)]), 0, _normal, _normal),
    ("affine_scalar_learnable", jb.affine_scalar(), {"shift": 0.3, "log_scale": -0.7},
     tfb.Chain([tfb.Shift(0.3), tfb.Scale(log_scale=-0.7)]), 1, _normal, _normal),
    ("normal_cdf", jb.normal_cdf(), (), tfb.NormalCDF(), 0, _normal, _unit),
    ("sigmoid", jb.sigmoid(), (), tfb.Sigmoid(), 0, _normal, _unit),
    ("sigmoid_low_high", jb.sigmoid(-1.0, 2.0), (), tfb.Sigmoid(low=-1.0, high=2.0), 1, _normal,
     lambda shape: -1.0 + 3.0 * _unit(shape)),
    ("tanh", jb.tanh(), (), tfb.Tanh(), 0, _normal, lambda shape: 2.0 * _unit(shape) - 1.0),
    ("exp", jb.exp(), (), tfb.Exp(), 0, _normal, lambda shape: jnp.exp(_normal(shape))),
    ("softplus", jb.softplus(), (), tfb.Softplus(), 0, _normal,
     lambda shape: jnp.exp(_normal(shape))),
    ("softplus_hinge_low", jb.softplus(0.3, -1.0), (), tfb.Softplus(hinge_softness=0.3, low=-1.0),
     1, _normal, lambda shape: jnp.exp(_normal(shape)) - 1.0),
    ("affine_tril_lowrank", jb.affine_tril_lowrank(rank=2),
     {"tril": V3, "update": U3, "shift": B3},
     _low_rank_tfp(tfp.math.fill_triangular(V3), U3, B3), 1, _normal, _normal),
    ("affine_tril_lowrank_positive_diagonal",
     jb.affine_tril_lowrank(rank=2, positive_diagonal=True),
     {"tril": V3, "update": U3, "shift": B3},
     _low_rank_tfp(tfb.FillScaleTriL().forward(V3), U3, B3), 1, _normal, _normal),
    ("permute", jb.permute([2, 0, 1]), (), tfb.Permute([2, 0, 1]), 1, _normal, _normal),
    ("reverse", jb.reverse(), (), tfb.Permute([2, 1, 0]), 1, _normal, _normal),
    ("chain", jb.chain(jb.scale(2.0), jb.shift(1.0), jb.tanh()), ((), (), ()),
     tfb.Chain([tfb.Tanh(), tfb.Shift(1.0), tfb.Scale(2.0)]), 0, _normal,
     lambda shape: 2.0 * _unit(shape) - 1.0),
    ("invert", jb.invert(jb.sigmoid()), (), tfb.Invert(tfb.Sigmoid()), 0, _unit, _normal),
    ("inline", jb.inline(jnp.sinh, jnp.arcsinh), (),
     tfb.Inline(forward_fn=jnp.sinh, inverse_fn=jnp.arcsinh,
                forward_log_det_jacobian_fn=lambda x: jnp.log(jnp.cosh(x)),
                forward_min_event_ndims=0), 0, _normal, _normal),
]


@pytest.mark.parametrize(
    ("bijector", "params", "reference", "event_ndims", "sample_x", "sample_y"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_agrees_with_tfp(bijector, params, reference, event_ndims, sample_x, sample_y):
    """forward, inverse and both log-dets equal TFP's, on inputs in each domain."""
    x = sample_x((5, 3))
    y = sample_y((5, 3))
    # Elementwise jflows bijectors sum their log-det over event_ndims given at build time;
    # here they are built with event_ndims=0 unless the case says otherwise, so sum to match.
    b = bijector
    extra = event_ndims - b.event_ndims
    state = b.init(KEY, x)[1]
    y_ours, fldj, _ = b.forward(params, state, x)
    x_ours, ildj, _ = b.inverse(params, state, y)
    if extra:
        fldj = fldj.sum(axis=tuple(range(-extra, 0)))
        ildj = ildj.sum(axis=tuple(range(-extra, 0)))
    np.testing.assert_allclose(y_ours, reference.forward(x), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(x_ours, reference.inverse(y), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(
        fldj, reference.forward_log_det_jacobian(x, event_ndims=event_ndims), rtol=RTOL, atol=ATOL
    )
    np.testing.assert_allclose(
        ildj, reference.inverse_log_det_jacobian(y, event_ndims=event_ndims), rtol=RTOL, atol=ATOL
    )


def test_reshape_agrees_with_tfp():
    x = _normal((4, 6))
    ours = jb.reshape((2, 3), (6,))
    reference = tfb.Reshape(event_shape_out=(2, 3), event_shape_in=(6,))
    y, log_det, _ = ours.forward((), (), x)
    np.testing.assert_array_equal(y, reference.forward(x))
    np.testing.assert_array_equal(ours.inverse((), (), y)[0], reference.inverse(y))
    assert log_det.shape == (4,) and not np.any(log_det)


def test_block_agrees_with_tfp_blockwise():
    x = _normal((4, 5))
    ours = jb.block([jb.exp(), jb.affine_tril_lowrank(rank=2)], [2, 3])
    params = ((), {"tril": V3, "update": U3, "shift": B3})
    reference = tfb.Blockwise(
        [tfb.Exp(), _low_rank_tfp(tfp.math.fill_triangular(V3), U3, B3)], block_sizes=[2, 3]
    )
    y, log_det, _ = ours.forward(params, ((), ()), x)
    np.testing.assert_allclose(y, reference.forward(x), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(
        log_det, reference.forward_log_det_jacobian(x, event_ndims=1), rtol=RTOL, atol=ATOL
    )
    x_back, inv_log_det, _ = ours.inverse(params, ((), ()), y)
    np.testing.assert_allclose(x_back, reference.inverse(y), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(inv_log_det, -log_det, rtol=RTOL, atol=ATOL)


def test_scan_equals_chain_of_its_layers():
    layer = jb.chain(jb.affine_tril_lowrank(rank=1), jb.reverse(), jb.leaky_relu())
    stacked = jb.scan(layer, 3)
    params, state = stacked.init(KEY, jnp.zeros((3,)))
    x = _normal((5, 3))
    y, log_det, _ = stacked.forward(params, state, x)
    unrolled = jb.chain(layer, layer, layer)
    per_layer = tuple(jax.tree_util.tree_map(lambda a, i=i: a[i], params) for i in range(3))
    per_state = tuple(jax.tree_util.tree_map(lambda a, i=i: a[i], state) for i in range(3))
    y_ref, log_det_ref, _ = unrolled.forward(per_layer, per_state, x)
    np.testing.assert_allclose(y, y_ref, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(log_det, log_det_ref, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_fill_triangular_matches_tfp(n):
    v = _normal((2, n * (n + 1) // 2))
    np.testing.assert_array_equal(jb.fill_triangular(v), tfp.math.fill_triangular(v))
    np.testing.assert_array_equal(
        jb.fill_triangular_inverse(jb.fill_triangular(v)), tfp.math.fill_triangular_inverse(
            tfp.math.fill_triangular(v))
    )
    np.testing.assert_array_equal(jb.fill_triangular_inverse(jb.fill_triangular(v)), v)


def test_chain_order_is_reverse_of_tfp():
    """jflows' chain runs its first part first; TFP's Chain runs its last part first."""
    x = jnp.array([1.0, 2.0])
    ours = jb.chain(jb.shift(1.0), jb.scale(3.0))  # (x + 1) * 3
    np.testing.assert_allclose(ours.forward(((), ()), ((), ()), x)[0], [6.0, 9.0])
    np.testing.assert_allclose(tfb.Chain([tfb.Scale(3.0), tfb.Shift(1.0)]).forward(x), [6.0, 9.0])
