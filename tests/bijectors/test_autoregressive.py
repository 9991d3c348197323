"""MAF / IAF bijectors: TFP-JAX agreement, the paper's formulas, the compiled loop, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_probability.substrates.jax as tfp

import jflows.bijectors as jb
from jflows.bijectors.autoregressive import affine_transformer
from jflows.flows import maf_bijector
from jflows.nets import MADE
from jflows.nets.made_sampling import NUM_CHUNKS
from jflows.testing import dense_log_det

tfb = tfp.bijectors
D = 5
TOL = dict(rtol=1e-5, atol=1e-5)


def strictly_lower_linear(params, x, cond):
    """A user conditioner: shift and log-scale linear in x with strictly lower-triangular
    weights (autoregressive in the natural order)."""
    del cond
    mask = jnp.tril(jnp.ones((x.shape[-1], x.shape[-1])), -1)
    return x @ (params["w_shift"] * mask).T, 0.3 * jnp.tanh(x @ (params["w_scale"] * mask).T)


def init_linear(key, x):
    del key
    d = x.shape[-1]
    return {"w_shift": jnp.full((d, d), 0.5, x.dtype), "w_scale": jnp.full((d, d), -0.4, x.dtype)}


def made_and_params(seed=0, **kwargs):
    kwargs.setdefault("hidden_sizes", (8, 8))
    kwargs.setdefault("output_init_scale", 0.5)
    made = MADE(D, **kwargs)
    bijector = jb.masked_autoregressive(made)
    params, state = bijector.init(jax.random.key(seed), jnp.zeros((D,)))
    return made, bijector, params, state


def tfp_shift_and_log_scale(made, params):
    """The same network as TFP's ``shift_and_log_scale_fn`` (TFP's own AutoregressiveNetwork
    is Keras-based and not part of the JAX substrate)."""

    def fn(y, conditional_input=None):
        out = made.apply({"params": params}, y, conditional_input)
        return out[..., 0], out[..., 1]

    return fn


def test_maf_and_iaf_equal_tfp():
    made, maf, params, state = made_and_params(input_order="random", seed=2, cond_shape=(3,))
    iaf = jb.inverse_autoregressive(made)
    cond = jax.random.normal(jax.random.key(5), (7, 3))
    kwargs = {"conditional_input": cond}
    reference = tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=tfp_shift_and_log_scale(
        made, params))
    u = jax.random.normal(jax.random.key(1), (7, D))
    x, fwd_log_det, _ = maf.forward(params, state, u, cond=cond)
    np.testing.assert_allclose(x, reference.forward(u, **kwargs), **TOL)
    np.testing.assert_allclose(
        fwd_log_det, reference.forward_log_det_jacobian(u, event_ndims=1, **kwargs), **TOL)
    u_back, inv_log_det, _ = maf.inverse(params, state, x, cond=cond)
    np.testing.assert_allclose(u_back, reference.inverse(x, **kwargs), **TOL)
    np.testing.assert_allclose(
        inv_log_det, reference.inverse_log_det_jacobian(x, event_ndims=1, **kwargs), **TOL)
    # IAF is TFP's Invert(MAF).
    y, iaf_log_det, _ = iaf.forward(params, state, x, cond=cond)
    iaf_reference = tfb.Invert(reference)
    np.testing.assert_allclose(y, iaf_reference.forward(x, **kwargs), **TOL)
    np.testing.assert_allclose(
        iaf_log_det, iaf_reference.forward_log_det_jacobian(x, event_ndims=1, **kwargs), **TOL)


def test_function_conditioner_equals_tfp():
    bijector = jb.masked_autoregressive(strictly_lower_linear, init=init_linear)
    params, state = bijector.init(jax.random.key(0), jnp.zeros((D,)))
    reference = tfb.MaskedAutoregressiveFlow(
        shift_and_log_scale_fn=lambda y: strictly_lower_linear(params, y, None))
    u = jax.random.normal(jax.random.key(1), (3, D))
    x, log_det, _ = bijector.forward(params, state, u)
    np.testing.assert_allclose(x, reference.forward(u), **TOL)
    np.testing.assert_allclose(log_det, reference.forward_log_det_jacobian(u, event_ndims=1),
                               **TOL)
    u_back, inverse_log_det, _ = bijector.inverse(params, state, x)
    np.testing.assert_allclose(u_back, u, **TOL)
    np.testing.assert_allclose(inverse_log_det, -log_det, **TOL)
    np.testing.assert_allclose(log_det[0], dense_log_det(
        lambda v: bijector.forward(params, state, v)[0], u[0]), rtol=1e-4, atol=1e-4)


def test_density_direction_is_the_papers_formula():
    made, maf, params, state = made_and_params(input_order="random", seed=1)
    x = jax.random.normal(jax.random.key(3), (4, D))
    out = made.apply({"params": params}, x)
    m, alpha = out[..., 0], out[..., 1]
    u, log_det, _ = maf.inverse(params, state, x)
    np.testing.assert_allclose(u, (x - m) * jnp.exp(-alpha), **TOL)
    np.testing.assert_allclose(log_det, -jnp.sum(alpha, -1), **TOL)


@pytest.mark.parametrize("made", [MADE(D, (8,), input_order="reversed"), MADE(D, ()),
                                  MADE(1, (4,))], ids=["reversed", "no_hidden", "one_dim"])
def test_edge_configurations_round_trip_and_log_det(made):
    maf = jb.masked_autoregressive(made)
    d = made.event_size
    params, state = maf.init(jax.random.key(0), jnp.zeros((d,)))
    params = jax.tree_util.tree_map(lambda p: p + 0.3, params)
    u = jax.random.normal(jax.random.key(1), (d,))
    x, log_det, _ = maf.forward(params, state, u)
    np.testing.assert_allclose(maf.inverse(params, state, x)[0], u, **TOL)
    expected = dense_log_det(lambda v: maf.forward(params, state, v)[0], u)
    np.testing.assert_allclose(log_det, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("sampling", ["auto", "passes"])
def test_sampling_is_compiled_loops_not_unrolled(sampling):
    """The traced program does not grow with D: the D-pass loop holds one copy of the
    network, the incremental solve one per chunk of steps (at most NUM_CHUNKS)."""
    def count(d):
        maf = jb.masked_autoregressive(MADE(d, (8,)), sampling=sampling)
        params, state = maf.init(jax.random.key(0), jnp.zeros((d,)))
        jaxpr = jax.make_jaxpr(lambda u: maf.forward(params, state, u))(jnp.zeros((2, d)))
        text = str(jaxpr)
        return text.count("dot_general"), "while" in text or "scan" in text

    small, big = (3, 12) if sampling == "passes" else (2 * NUM_CHUNKS, 5 * NUM_CHUNKS)
    (dots_small, looped_small), (dots_big, looped_big) = count(small), count(big)
    assert looped_small and looped_big
    assert dots_small == dots_big


def test_log_scale_bound():
    made, _, params, state = made_and_params(output_init_scale=5.0)
    bounded = jb.masked_autoregressive(made, log_scale_bound=0.7)
    x = 3.0 * jax.random.normal(jax.random.key(2), (50, D))
    _, log_det, _ = bounded.inverse(params, state, x)
    raw = made.apply({"params": params}, x)[..., 1]
    np.testing.assert_allclose(log_det, -jnp.sum(0.7 * jnp.tanh(raw / 0.7), -1), **TOL)
    assert float(jnp.max(jnp.abs(raw))) > 0.7  # the bound is active somewhere


def test_forward_broadcasts_base_to_the_cond_batch():
    made, maf, params, state = made_and_params(cond_shape=(3,))
    cond = jax.random.normal(jax.random.key(0), (6, 3))
    u = jax.random.normal(jax.random.key(1), (D,))
    x, log_det, _ = maf.forward(params, state, u, cond=cond)
    assert x.shape == (6, D) and log_det.shape == (6,)
    np.testing.assert_allclose(maf.forward(params, state, u, cond=cond[2])[0], x[2], **TOL)


def test_errors():
    with pytest.raises(ValueError, match="params_per_dim=2"):
        jb.masked_autoregressive(MADE(D, (4,), params_per_dim=3))
    with pytest.raises(ValueError, match="init is only for function conditioners"):
        jb.masked_autoregressive(MADE(D, (4,)), init=init_linear)
    with pytest.raises(TypeError, match="must be a jflows.nets.MADE or a function"):
        jb.masked_autoregressive(3)
    with pytest.raises(ValueError, match="log_scale_bound"):
        jb.masked_autoregressive(MADE(D, (4,)), log_scale_bound=0.0)
    with pytest.raises(ValueError, match="sampling must be one of"):
        jb.masked_autoregressive(MADE(D, (4,)), sampling="fast")
    with pytest.raises(ValueError, match=r"cond_shape=\(2,\) but the MADE was built with "
                                         r"cond_shape=\(3,\)"):
        jb.masked_autoregressive(MADE(D, (4,), cond_shape=(3,)), cond_shape=(2,))
    with pytest.raises(ValueError, match="option of the default affine transformer"):
        jb.masked_autoregressive(MADE(D, (4,)), log_scale_bound=1.0,
                                 transformer=affine_transformer())
    bad = jb.masked_autoregressive(lambda p, x, c: (x[..., :2], x[..., :2]))
    with pytest.raises(ValueError, match=r"2 parameters per dimension for the input of shape "
                                         r"\(3, 5\).*\(\(3, 2\), \(3, 2\)\)"):
        bad.inverse((), (), jnp.zeros((3, D)))


def test_integer_input_is_refused_clearly():
    """Not a scan-carry dtype error from inside a stack: density models cast integer data
    (tests/flows/test_maf.py); the bijectors ask for real-valued input."""
    _, maf, params, state = made_and_params()
    stack = maf_bijector(D, 2, (4,))
    stack_params, stack_state = stack.init(jax.random.key(0), jnp.zeros((D,)))
    x = jnp.ones((3, D), jnp.int32)
    for call in (lambda: maf.inverse(params, state, x), lambda: maf.forward(params, state, x),
                 lambda: stack.inverse(stack_params, stack_state, x)):
        with pytest.raises(TypeError, match="expected real-valued input, got dtype int32"):
            call()


@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_cond_is_checked_by_the_one_checker(direction):
    _, conditional, params, state = made_and_params(cond_shape=(2,))
    call = getattr(conditional, direction)
    x = jnp.zeros((3, D))
    with pytest.raises(ValueError, match="pass cond"):
        call(params, state, x)
    with pytest.raises(ValueError, match=r"cond's batch shape \(4,\).*data's batch shape "
                                         r"\(3,\)"):
        call(params, state, x, cond=jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"trailing shape \(2,\).*\(3, 3\)"):
        call(params, state, x, cond=jnp.zeros((3, 3)))
    _, unconditional, params, state = made_and_params()
    with pytest.raises(ValueError, match="unconditional"):
        getattr(unconditional, direction)(params, state, x, cond=jnp.zeros((3, 2)))


def test_function_conditioner_declares_its_cond_shape():
    def shifted_by_cond(params, x, cond):
        shift, log_scale = strictly_lower_linear(params, x, None)
        return shift + cond[..., :1], log_scale

    bijector = jb.masked_autoregressive(shifted_by_cond, init=init_linear, cond_shape=(2,))
    assert bijector.cond_shape == (2,)
    assert jb.masked_autoregressive(MADE(D, (4,), cond_shape=(3,))).cond_shape == (3,)
    params, state = bijector.init(jax.random.key(0), jnp.zeros((D,)))
    u = jax.random.normal(jax.random.key(1), (4, D))
    cond = jax.random.normal(jax.random.key(2), (4, 2))
    x, log_det, _ = bijector.forward(params, state, u, cond=cond)
    reference = tfb.MaskedAutoregressiveFlow(
        shift_and_log_scale_fn=lambda y, conditional_input: shifted_by_cond(
            params, y, conditional_input))
    np.testing.assert_allclose(x, reference.forward(u, conditional_input=cond), **TOL)
    np.testing.assert_allclose(bijector.inverse(params, state, x, cond=cond)[1], -log_det,
                               **TOL)
    with pytest.raises(ValueError, match="unconditional"):
        jb.masked_autoregressive(strictly_lower_linear, init=init_linear).forward(
            params, state, u, cond=cond)


def test_softplus_affine_transformer_matches_flowjax_affine():
    """FlowJAX's default MAF transformer (its ``Affine`` with ``softplus(.) + min_scale``,
    built as in ``flowjax.flows._affine_with_min_scale``) at the same unconstrained
    params: the density direction is FlowJAX's ``transform``, the sampling direction its
    ``inverse``; the identity at zero params; scales never below ``min_scale``."""
    import equinox as eqx
    from flowjax.bijections import Affine
    from flowjax.utils import get_ravelled_pytree_constructor
    from paramax import Parameterize

    min_scale = 0.05
    scale = Parameterize(lambda r: jax.nn.softplus(r) + min_scale,
                         jnp.log(jnp.expm1(1.0 - min_scale)))
    reference = eqx.tree_at(lambda a: a.scale, Affine(), replace=scale)
    construct, _ = get_ravelled_pytree_constructor(reference, eqx.is_inexact_array)
    transformer = jb.softplus_affine_transformer(min_scale)
    rng = np.random.default_rng(0)
    for theta, x in zip(rng.normal(scale=3.0, size=(6, 2)), rng.normal(size=6), strict=True):
        affine = construct(jnp.asarray(theta))
        u, log_det = transformer.inverse(jnp.asarray(theta), jnp.asarray(x))
        u_ref, log_det_ref = affine.transform_and_log_det(jnp.asarray(x))
        np.testing.assert_allclose([u, log_det], [u_ref, log_det_ref], **TOL)
        back, back_log_det = transformer.forward(jnp.asarray(theta), u)
        np.testing.assert_allclose([back, back_log_det], [x, -log_det_ref], **TOL)
    zero = jnp.zeros(2)
    np.testing.assert_allclose(transformer.inverse(zero, 1.7), (1.7, 0.0), atol=1e-6)
    _, log_det = transformer.inverse(jnp.array([0.0, -1e4]), 1.0)
    np.testing.assert_allclose(log_det, np.log(min_scale), rtol=1e-6)
    with pytest.raises(ValueError, match=r"min_scale must be in \[0, 1\), got 1.0"):
        jb.softplus_affine_transformer(1.0)
