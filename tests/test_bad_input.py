"""Bad input gets a clear error: one table, each row what a user might do wrong.

Every row calls jflows the wrong way and names the exception type and a pattern the
message must match (what was expected and what was got). Rows that need a model build
it in a small factory so the table reads as a list of mistakes. PixelCNN++'s bad inputs
(pixels outside 0..255, float images, labels out of range, a label batch that does not
broadcast with ``sample_shape``, swapped params/state) are the table of
``tests/distributions/test_pixelcnn.py::test_clear_errors``, which shares that module's
compiled model instead of building another network here.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jflows.bijectors as jb
import jflows.distributions as jd
from jflows.flows import maf

KEY = jax.random.key(0)


def _flow(bijector=None, event_shape=(3,)):
    flow = jd.transformed(jd.standard_normal(event_shape), bijector or jb.shift(param_shape=(3,)))
    params, state = flow.init(KEY)
    return flow, params, state


def _log_prob_with(params_fn=None, state_fn=None, x=None, **kwargs):
    def call():
        flow, params, state = _flow()
        params = params_fn(params, state) if params_fn else params
        state = state_fn(params, state) if state_fn else state
        return flow.log_prob(params, state, jnp.zeros((4, 3)) if x is None else x, **kwargs)
    return call


def _swapped():
    flow, params, state = _flow()
    return flow.log_prob(state, params, jnp.zeros((4, 3)))


def _float64_data_into_float32_maf():
    with jax.enable_x64(True):
        flow = maf(3, 1, (4,))
        params, state = flow.init(KEY, jnp.float32)
        return flow.log_prob_and_state(params, state, jnp.zeros((4, 3), jnp.float64),
                                       train=True)


def _unconditional_sample_with_cond():
    flow, params, state = _flow()
    return flow.sample(params, state, KEY, (2,), cond=jnp.zeros((2, 1)))


def _conditional_maf_without_cond():
    flow = maf(3, 1, (4,), cond_shape=(2,))
    params, state = flow.init(KEY)
    return flow.log_prob(params, state, jnp.zeros((4, 3)))


def _conditional_maf_mismatched_cond_batch():
    flow = maf(3, 1, (4,), cond_shape=(2,))
    params, state = flow.init(KEY)
    return flow.log_prob(params, state, jnp.zeros((4, 3)), cond=jnp.zeros((5, 2)))


def _conditional_maf_sample_mismatched_cond_batch():
    flow = maf(3, 1, (4,), cond_shape=(2,))
    params, state = flow.init(KEY)
    return flow.sample(params, state, KEY, (4,), cond=jnp.zeros((5, 2)))


def _bijector_as_jit_argument():
    bijector = jb.scale()
    return jax.jit(lambda b, x: b.forward((), (), x))(bijector, jnp.ones(3))


def _model_as_jit_argument():
    flow, params, state = _flow()
    return jax.jit(lambda f, p, s, x: f.log_prob(p, s, x))(flow, params, state, jnp.ones(3))


ROWS = [
    ("standard_normal_negative_size", lambda: jd.standard_normal((-1,)), ValueError,
     r"event_shape must have sizes >= 1, got \(-1,\)"),
    ("standard_normal_zero_size", lambda: jd.standard_normal((2, 0)), ValueError,
     r"sizes >= 1, got \(2, 0\)"),
    ("diag_normal_zero_size", lambda: jd.diag_normal((0,)), ValueError, r"sizes >= 1"),
    ("diag_normal_zero_scale", lambda: jd.diag_normal((2,), scale=0.0), ValueError,
     r"scale must be > 0, got 0.0"),
    ("diag_normal_negative_scale", lambda: jd.diag_normal((2,), scale=[1.0, -1.0]), ValueError,
     r"scale must be > 0"),
    ("affine_negative_rank", lambda: jb.affine_tril_lowrank(rank=-2), ValueError,
     r"rank must be an int >= 0 .*got -2"),
    ("init_given_a_list", lambda: _flow()[0].init([0, 1]), TypeError,
     r"expected a PRNG key .*got a list"),
    ("init_given_an_int_array", lambda: _flow()[0].init(jnp.arange(3)), TypeError,
     r"expected a PRNG key .*int32"),
    ("params_with_a_wrong_key",
     _log_prob_with(params_fn=lambda p, s: {"base": {}, "bijector": {"scale": jnp.zeros(3)}}),
     ValueError, r"params do not match what init made .*structure"),
    ("rank_2_params_for_a_rank_1_bijector",
     _log_prob_with(params_fn=lambda p, s: {"base": {}, "bijector": {"shift": jnp.zeros((2, 3))}}),
     ValueError, r"leaf shapes differ .*\(2, 3\), \(3,\)"),
    ("params_and_state_swapped", _swapped, ValueError,
     r"do not match what init made.*Pass \(params, state\) in that order"),
    ("a_dict_batch_instead_of_its_array", _log_prob_with(x={"x": jnp.zeros((4, 3))}), TypeError,
     r"expected the data as one array, got a dict .* pass the array itself"),
    ("wrong_event_shape", _log_prob_with(x=jnp.zeros((4, 5))), ValueError,
     r"expected the trailing event shape \(3,\).*\(4, 5\)"),
    ("cond_to_an_unconditional_flow", _log_prob_with(cond=jnp.zeros((4, 2))), ValueError,
     r"got cond of shape \(4, 2\), but this model is unconditional"),
    ("cond_to_an_unconditional_sample", _unconditional_sample_with_cond, ValueError,
     r"unconditional"),
    ("conditional_maf_without_cond", _conditional_maf_without_cond, ValueError,
     r"conditional \(cond_shape=\(2,\)\); pass cond"),
    ("conditional_maf_cond_batch_mismatch", _conditional_maf_mismatched_cond_batch, ValueError,
     r"cond's batch shape \(5,\).*data's batch shape \(4,\)"),
    ("conditional_maf_sample_cond_batch_mismatch", _conditional_maf_sample_mismatched_cond_batch,
     ValueError, r"sample_shape \(4,\) does not broadcast with cond's batch shape \(5,\)"),
    ("float64_data_into_a_float32_maf", _float64_data_into_float32_maf, TypeError,
     r"data are float64 but the model's params/state are float32"),
    ("bijector_as_a_jit_argument", _bijector_as_jit_argument, TypeError, r"close over it"),
    ("model_as_a_jit_argument", _model_as_jit_argument, TypeError, r"close over it"),
]


@pytest.mark.parametrize(("call", "error", "pattern"), [r[1:] for r in ROWS],
                         ids=[r[0] for r in ROWS])
def test_bad_input_is_a_clear_error(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_integer_data_to_a_maf_is_cast_not_a_carry_error():
    flow = maf(3, 2, (4,))
    params, state = flow.init(KEY)
    ints = jnp.arange(12).reshape(4, 3) % 3
    np.testing.assert_allclose(flow.log_prob(params, state, ints),
                               flow.log_prob(params, state, ints.astype(jnp.float32)))
