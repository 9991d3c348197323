"""Combinators: parameter layout, event-ndims bookkeeping, key plumbing and errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jflows.bijectors as jb
from jflows.bijectors.base import EMPTY, Bijector

KEY = jax.random.key(0)


def key_recorder():
    """A bijector whose log-det is a uniform draw from its key: shows which key it got."""

    def draw(key, x):
        return jnp.broadcast_to(jax.random.uniform(key), x.shape[:-1])

    return Bijector(
        lambda key, x: (EMPTY, EMPTY),
        lambda p, s, x, *, cond=None, train=False, key=None: (x, draw(key, x), s),
        lambda p, s, y, *, cond=None, train=False, key=None: (y, draw(key, y), s),
        1,
    )


def test_named_chain_gives_dicts_in_order():
    b = jb.chain(act=jb.leaky_relu(), lin=jb.affine_tril_lowrank(rank=1))
    params, state = b.init(KEY, jnp.zeros((3,)))
    assert list(params) == ["act", "lin"] and list(state) == ["act", "lin"]
    assert set(params["lin"]) == {"tril", "update", "shift"}


def test_chain_with_wrong_params_structure_is_a_clear_error():
    b = jb.chain(jb.exp(), jb.tanh())
    with pytest.raises(ValueError, match=r"expected state as a tuple of 2 entries"):
        b.forward(((), ()), (), jnp.zeros(3))
    named = jb.chain(a=jb.exp())
    with pytest.raises(ValueError, match=r"dict with keys \['a'\]"):
        named.forward({"b": ()}, {"a": ()}, jnp.zeros(3))
    with pytest.raises(ValueError, match="either all positionally or all by keyword"):
        jb.chain(jb.exp(), b=jb.tanh())
    with pytest.raises(TypeError, match="part 1 is a"):
        jb.chain(jb.exp(), lambda x: x)


def test_chain_event_ndims_is_the_largest_needed_and_log_dets_are_summed():
    b = jb.chain(jb.exp(), jb.affine_tril_lowrank())
    assert b.event_ndims == 1 and b.event_ndims_out is None
    x = jax.random.normal(KEY, (4, 3))
    params, state = b.init(KEY, x)
    _, log_det, _ = b.forward(params, state, x)
    assert log_det.shape == (4,)
    np.testing.assert_allclose(log_det, x.sum(-1), rtol=1e-6)  # identity affine at init


def test_chain_tracks_shapes_through_reshape():
    b = jb.chain(jb.reshape((2, 3), (6,)), jb.affine_tril_lowrank())
    assert (b.event_ndims, b.event_ndims_out) == (1, 2)
    params, state = b.init(KEY, jnp.zeros((6,)))
    assert params[1]["shift"].shape == (3,)  # init saw the reshaped (2, 3) event
    y, log_det, _ = b.forward(params, state, jnp.ones((5, 6)))
    assert y.shape == (5, 2, 3) and log_det.shape == (5,)


def test_invert_swaps_directions_and_event_ndims():
    b = jb.invert(jb.reshape((2, 3), (6,)))
    assert (b.event_ndims, b.event_ndims_out) == (2, 1)
    y, _, _ = b.forward((), (), jnp.ones((4, 2, 3)))
    assert y.shape == (4, 6)


def test_every_part_gets_its_own_key_the_same_in_both_directions():
    b = jb.chain(key_recorder(), key_recorder())
    x = jnp.zeros((1, 2))
    part_draws = [
        jax.random.uniform(jax.random.fold_in(KEY, i)) for i in range(2)
    ]
    _, fwd, _ = b.forward(((), ()), ((), ()), x, key=KEY)
    _, inv, _ = b.inverse(((), ()), ((), ()), x, key=KEY)
    np.testing.assert_allclose(fwd, sum(part_draws), rtol=1e-6)
    np.testing.assert_allclose(inv, fwd, rtol=1e-6)
    assert part_draws[0] != part_draws[1]


def test_scan_layers_get_distinct_keys_and_compile_one_layer():
    b = jb.scan(key_recorder(), 3)
    params, state = b.init(KEY, jnp.zeros((2,)))
    _, log_det, _ = b.forward(params, state, jnp.zeros((1, 2)), key=KEY)
    expected = sum(jax.random.uniform(jax.random.fold_in(KEY, i)) for i in range(3))
    np.testing.assert_allclose(log_det, expected, rtol=1e-6)

    def count_dots(n):
        layer = jb.affine_tril_lowrank(rank=1)
        stacked = jb.scan(layer, n)
        p, s = stacked.init(KEY, jnp.zeros((3,)))
        jaxpr = jax.make_jaxpr(lambda x: stacked.forward(p, s, x)[0])(jnp.zeros((3,)))
        return str(jaxpr).count("dot_general")

    assert count_dots(2) == count_dots(20)


def test_scan_params_are_stacked():
    b = jb.scan(jb.affine_tril_lowrank(rank=2), 4)
    params, _ = b.init(KEY, jnp.zeros((3,)))
    assert params["update"].shape == (4, 3, 2)
    assert not np.allclose(params["update"][0], params["update"][1])


def test_block_and_scan_argument_errors():
    with pytest.raises(ValueError, match="one size per bijector"):
        jb.block([jb.exp()], [1, 2])
    with pytest.raises(ValueError, match="must act on a vector slice"):
        jb.block([jb.reshape((2,), (2,))], [2])
    with pytest.raises(ValueError, match="num_layers must be >= 1"):
        jb.scan(jb.exp(), 0)
    with pytest.raises(ValueError, match="preserve the input's shape"):
        jb.scan(jb.reshape((2, 3), (6,)), 2)
