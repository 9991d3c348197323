"""Coupling bijectors against distrax's MaskedCoupling (affine and spline), the split layout
against the masked one, identity at initialisation, and the conditioner conventions."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jflows.bijectors.autoregressive import affine_transformer
from jflows.bijectors.coupling import (
    MLPConditioner,
    linen_conditioner,
    masked_coupling,
    split_coupling,
)
from jflows.bijectors.spline import spline_transformer
from jflows.nets.autoregressive import Conditioner
from jflows.testing import perturbed

D, BINS, BOUND = 5, 4, 2.0
K = 3 * BINS - 1
MASK = np.array([True, False, True, False, False])


def _distrax_spline(theta):
    """distrax's RQS with the same knots as jflows' spline_transformer(BINS, BOUND) at
    ``theta`` (its boundary slopes are fixed to 1, their raw entries unused)."""
    zeros = jnp.zeros(theta.shape[:-1] + (1,), theta.dtype)
    params = jnp.concatenate([theta[..., :2 * BINS], zeros, theta[..., 2 * BINS:], zeros], -1)
    return distrax.RationalQuadraticSpline(params, -BOUND, BOUND, boundary_slopes="identity",
                                           min_bin_size=2 * BOUND * 1e-3, min_knot_slope=1e-3)


def _distrax_affine(theta):
    return distrax.ScalarAffine(shift=theta[..., 0], log_scale=theta[..., 1])


@pytest.mark.parametrize("kind", ["affine", "spline"])
def test_masked_coupling_matches_distrax(kind):
    k = 2 if kind == "affine" else K
    transformer = affine_transformer() if kind == "affine" else spline_transformer(BINS, BOUND)
    net = MLPConditioner(D, k, (16,))
    ours = masked_coupling(MASK, net, transformer)
    params, state = ours.init(jax.random.key(0), jnp.zeros((D,)))
    params = perturbed(params, jax.random.key(1), 0.5)
    inner = _distrax_affine if kind == "affine" else _distrax_spline
    ref = distrax.MaskedCoupling(MASK, lambda v: net.apply({"params": params}, v), inner)
    x = 1.5 * jax.random.normal(jax.random.key(2), (7, D))
    y, log_det, _ = ours.forward(params, state, x)
    ref_y, ref_log_det = ref.forward_and_log_det(x)
    np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(log_det, ref_log_det, rtol=1e-5, atol=1e-5)
    back, inv_log_det, _ = ours.inverse(params, state, y)
    ref_back, ref_inv = ref.inverse_and_log_det(y)
    np.testing.assert_allclose(back, ref_back, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(inv_log_det, ref_inv, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(y[:, MASK], x[:, MASK])


def test_split_equals_masked_with_the_same_network():
    """A split coupling is the masked one whose network ignores the zeroed inputs."""
    kept, size = 2, D - 2
    net = MLPConditioner(size, K, (16,))
    split = split_coupling(kept, net, spline_transformer(BINS, BOUND))
    params, state = split.init(jax.random.key(0), jnp.zeros((3, D)))
    params = perturbed(params, jax.random.key(1), 0.5)

    def masked_net(p, v, cond):  # the full masked event in, K for every element out
        theta = net.apply({"params": p}, v[..., :kept])
        return jnp.concatenate([jnp.zeros(v.shape[:-1] + (kept, K)), theta], axis=-2)

    masked = masked_coupling(np.arange(D) < kept,
                             Conditioner(lambda key, v: None, masked_net, K),
                             spline_transformer(BINS, BOUND))
    x = 1.5 * jax.random.normal(jax.random.key(2), (6, D))
    for direction in ("forward", "inverse"):
        a = getattr(split, direction)(params, state, x)
        b = getattr(masked, direction)(params, state, x)
        np.testing.assert_allclose(a[0], b[0], atol=1e-6)
        np.testing.assert_allclose(a[1], b[1], atol=1e-5)


def test_swap_transforms_the_first_part():
    bij = split_coupling(2, MLPConditioner(2, 2, (8,), zero_init=False), swap=True)
    params, state = bij.init(jax.random.key(0), jnp.zeros((D,)))
    x = jax.random.normal(jax.random.key(1), (4, D))
    y = bij.forward(params, state, x)[0]
    np.testing.assert_array_equal(y[:, 2:], x[:, 2:])
    assert not np.allclose(y[:, :2], x[:, :2])


@pytest.mark.parametrize("transformer", [affine_transformer(), spline_transformer(BINS, BOUND)])
def test_zero_initialised_conditioner_is_the_identity(transformer):
    bij = split_coupling(2, MLPConditioner(D - 2, transformer.params_per_dim, (8,)),
                         transformer)
    params, state = bij.init(jax.random.key(0), jnp.zeros((D,)))
    x = 2.0 * jax.random.normal(jax.random.key(1), (4, D))
    y, log_det, _ = bij.forward(params, state, x)
    np.testing.assert_allclose(y, x, atol=1e-6)
    np.testing.assert_allclose(log_det, 0.0, atol=1e-6)


def test_conditional_coupling_uses_cond_and_broadcasts():
    net = MLPConditioner(D - 2, 2, (8,), zero_init=False)
    bij = split_coupling(2, net, cond_shape=(3,))
    assert bij.cond_shape == (3,)
    params, state = bij.init(jax.random.key(0), jnp.zeros((D,)))
    x = jax.random.normal(jax.random.key(1), (D,))
    cond = jax.random.normal(jax.random.key(2), (4, 3))
    y, log_det, _ = bij.forward(params, state, x, cond=cond)  # one event, four conds
    assert y.shape == (4, D) and log_det.shape == (4,)
    assert not np.allclose(y[0], y[1])
    with pytest.raises(ValueError, match="conditional"):
        bij.forward(params, state, x)
    with pytest.raises(ValueError, match="unconditional"):
        split_coupling(2, MLPConditioner(D - 2, 2)).forward({}, (), x, cond=cond)


def test_pure_conditioner_equals_the_linen_module():
    net = MLPConditioner(D - 2, 2, (8,), zero_init=False)
    pure = linen_conditioner(net, 2)
    a, b = split_coupling(2, net), split_coupling(2, pure)
    params, state = a.init(jax.random.key(0), jnp.zeros((D,)))
    params_b, _ = b.init(jax.random.key(0), jnp.zeros((D,)))
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(params_b)
    x = jax.random.normal(jax.random.key(1), (3, D))
    np.testing.assert_allclose(a.forward(params, state, x)[0], b.forward(params, state, x)[0])


def test_bad_conditioners_and_options():
    with pytest.raises(TypeError, match="Conditioner"):
        split_coupling(2, lambda p, x, c: x)
    with pytest.raises(ValueError, match="takes 11"):
        split_coupling(2, Conditioner(lambda k, x: (), lambda p, x, c: x, 2),
                       spline_transformer(BINS))
    with pytest.raises(ValueError, match="boolean"):
        masked_coupling(np.array([1, 0, 1]), MLPConditioner(3, 2))
    with pytest.raises(ValueError, match="split_index"):
        split_coupling(0, MLPConditioner(3, 2))
    bij = split_coupling(2, MLPConditioner(4, 2, (8,)))  # built for D = 6, used with 5
    params, state = bij.init(jax.random.key(0), jnp.zeros((6,)))
    with pytest.raises(ValueError, match=r"shape \(3, 2\)"):
        bij.forward(params, state, jnp.zeros((5,)))
