"""Registry cases for the core catalogue and combinators."""

import jax
import jax.numpy as jnp
import numpy as np

import jflows.bijectors as jb
import jflows.distributions as jd
from jflows.testing import BijectorCase


def unit_interval(key, shape):
    return jax.random.uniform(key, shape, minval=0.02, maxval=0.98)


def positive(key, shape):
    return jnp.exp(0.5 * jax.random.normal(key, shape))


WIDE = np.array([-30.0, -1.0, 0.0, 1.0, 30.0])
UNIT_EDGES = np.array([1e-6, 0.5, 1.0 - 1e-6])
MISMATCHED = [((4, 5), "last axis 5 where init saw 3")]


def _sinh_inline(**kwargs):
    return jb.inline(jnp.sinh, jnp.arcsinh, **kwargs)


def _linear_inline():
    a = jnp.array([[2.0, 0.3, 0.0], [0.1, 1.0, -0.4], [0.0, 0.5, 1.5]])
    return jb.inline(
        lambda x: x @ a.T,
        lambda y: jnp.linalg.solve(a, y[..., None])[..., 0],
        event_ndims=1,
    )


def _inline_with_params():
    return jb.inline(
        lambda p, x: x * jnp.exp(p["log_scale"]),
        lambda p, y: y * jnp.exp(-p["log_scale"]),
        init=lambda key, x: {"log_scale": jnp.zeros(x.shape[-1:], x.dtype)},
    )


CASES = [
    # Elementwise, fixed constants and learnable parameters.
    BijectorCase("shift_fixed", lambda: jb.shift(1.5), (3,), scalar_base=True),
    BijectorCase("shift_learnable", lambda: jb.shift(param_shape=(3,)), (3,),
                 bad_inputs=MISMATCHED),
    BijectorCase("scale_fixed_negative", lambda: jb.scale(-2.0), (3,), scalar_base=True),
    # Decreasing as a whole (exp, then a negative scale): cdf must be 1 - F_base.
    BijectorCase("chain_decreasing", lambda: jb.chain(jb.exp(), jb.scale(-0.5), jb.shift(1.0)),
                 (3,), scalar_base=True),
    BijectorCase("scale_learnable", lambda: jb.scale(param_shape=(3,), event_ndims=1), (3,),
                 bad_inputs=MISMATCHED),
    BijectorCase("affine_scalar", lambda: jb.affine_scalar(), (2, 3)),
    BijectorCase("normal_cdf", jb.normal_cdf, (3,), scalar_base=True,
                 forward_edges=np.array([-8.0, 0.0, 8.0]), inverse_edges=UNIT_EDGES),
    # One float32 step inside each edge (above 0 the smallest normal: XLA flushes subnormals).
    BijectorCase("sigmoid", jb.sigmoid, (3,), scalar_base=True, forward_edges=WIDE,
                 inverse_edges=np.array([np.finfo(np.float32).tiny, *UNIT_EDGES,
                                         np.nextafter(np.float32(1.0), np.float32(0.0))])),
    BijectorCase("sigmoid_low_high", lambda: jb.sigmoid(-2.0, 3.0), (3,), scalar_base=True,
                 forward_edges=WIDE,
                 inverse_edges=np.array([np.nextafter(np.float32(-2.0), np.float32(3.0)),
                                         -2.0 + 1e-5, 0.5, 3.0 - 1e-5,
                                         np.nextafter(np.float32(3.0), np.float32(-2.0))])),
    BijectorCase("tanh", jb.tanh, (3,), scalar_base=True,
                 forward_edges=np.array([-15.0, 0.0, 15.0]),
                 inverse_edges=np.array([-1.0 + 1e-6, 0.0, 1.0 - 1e-6])),
    BijectorCase("exp", jb.exp, (3,), scalar_base=True, forward_edges=WIDE,
                 inverse_edges=np.array([1e-30, 1.0, 1e30])),
    BijectorCase("softplus", jb.softplus, (3,), scalar_base=True, forward_edges=WIDE,
                 inverse_edges=np.array([1e-6, 1.0, 100.0])),
    BijectorCase("softplus_hinge_low", lambda: jb.softplus(0.5, -1.0, event_ndims=1), (3,),
                 forward_edges=WIDE),
    BijectorCase("leaky_relu_learnable", jb.leaky_relu, (3,), forward_edges=WIDE),
    BijectorCase("leaky_relu_fixed", lambda: jb.leaky_relu(0.3), (3,), scalar_base=True),
    BijectorCase("identity", jb.identity, (3,), scalar_base=True),
    # Inline bijectors: autodiff log-det (elementwise and dense) and a given log-det.
    BijectorCase("inline_autodiff", _sinh_inline, (3,), scalar_base=True),
    BijectorCase("inline_given_log_det",
                 lambda: _sinh_inline(forward_log_det=lambda x: jnp.log(jnp.cosh(x))), (3,)),
    BijectorCase("inline_dense_autodiff", _linear_inline, (3,)),
    BijectorCase("inline_with_params", _inline_with_params, (3,)),
    # Linear maps.
    BijectorCase("affine_tril_lowrank", lambda: jb.affine_tril_lowrank(rank=2), (3,),
                 bad_inputs=MISMATCHED),
    BijectorCase("affine_tril_lowrank_positive_diag",
                 lambda: jb.affine_tril_lowrank(rank=1, positive_diagonal=True), (4,)),
    BijectorCase("affine_tril_only", lambda: jb.affine_tril_lowrank(), (3,)),
    BijectorCase("affine_fixed",
                 lambda: jb.affine_tril_lowrank(
                     scale_tril=jnp.array([[1.5, 0.0], [0.3, 0.7]]),
                     update=jnp.array([[0.2], [-0.4]]), shift=jnp.array([1.0, -1.0])),
                 (2,)),
    # Rearrangements.
    BijectorCase("permute", lambda: jb.permute([2, 0, 1]), (3,), bad_inputs=MISMATCHED),
    BijectorCase("reverse", jb.reverse, (5,)),
    BijectorCase("reshape", lambda: jb.reshape((2, 3), (6,)), (6,),
                 bad_inputs=[((4, 5), "event 5 where (6,) expected", "forward"),
                             ((4, 3, 2), "event (3, 2) where (2, 3) expected", "inverse")]),
    # Batch norm.
    BijectorCase("batch_norm", jb.batch_norm, (3,), trainable_state=True, bad_inputs=MISMATCHED),
    BijectorCase("batch_norm_images", lambda: jb.batch_norm(event_ndims=3), (2, 2, 3),
                 trainable_state=True),
    # Combinators.
    BijectorCase("chain", lambda: jb.chain(jb.leaky_relu(), jb.affine_tril_lowrank(rank=2),
                                           jb.tanh()), (3,)),
    BijectorCase("chain_named", lambda: jb.chain(act=jb.softplus(), lin=jb.affine_tril_lowrank(),
                                                 norm=jb.batch_norm()), (3,),
                 trainable_state=True),
    BijectorCase("chain_with_reshape",
                 lambda: jb.chain(jb.affine_tril_lowrank(rank=1), jb.reshape((2, 2), (4,)),
                                  jb.scale(param_shape=(2,))), (4,)),
    BijectorCase("invert_sigmoid", lambda: jb.invert(jb.sigmoid()), (3,), sample_x=unit_interval,
                 base=jd.uniform, scalar_base=True, forward_edges=UNIT_EDGES, inverse_edges=WIDE),
    BijectorCase("invert_reshape", lambda: jb.invert(jb.reshape((2, 3), (6,))), (2, 3)),
    BijectorCase("block", lambda: jb.block([jb.exp(), jb.affine_tril_lowrank(rank=1)], [2, 3]),
                 (5,), bad_inputs=[((4, 4), "last axis 4 where the blocks sum to 5")]),
    BijectorCase("scan", lambda: jb.scan(jb.chain(jb.affine_tril_lowrank(rank=1), jb.reverse(),
                                                  jb.leaky_relu()), 3), (3,)),
    BijectorCase("scan_batch_norm",
                 lambda: jb.scan(jb.chain(jb.affine_scalar(param_shape=(3,)), jb.batch_norm()), 2),
                 (3,), trainable_state=True),
]
