"""MADE: autoregressive structure for every option, degrees, a NumPy reference, errors."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jflows.nets import MADE, made_degrees, made_masks

D = 6
ORDERS = ["natural", "reversed", "random", (3, 5, 0, 2, 4, 1)]
DEGREES = ["equal", "random"]
# Every order x degree option, each at depth 1 without and depth 3 with conditioning, plus
# no hidden layer. Few distinct shapes: eager ops compile once per shape.
STRUCTURES = [((9,), False), ((9, 9, 9), True)]
CONFIGS = [(o, d, h, c) for o, d in itertools.product(ORDERS, DEGREES) for h, c in STRUCTURES]
CONFIGS += [("natural", "equal", (), False), ("random", "equal", (), True)]


def generation_order(made):
    """The dimensions in the order they are generated (sorted by input degree)."""
    return np.argsort(made.degrees.inputs)


def random_params(made, x, cond, seed=0):
    """Params with every weight O(1) (the output layer too), so no entry is ~0 by accident."""
    params = made.init(jax.random.key(seed), x, cond)["params"]
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    leaves = [jax.random.normal(k, leaf.shape, leaf.dtype)
              for k, leaf in zip(keys, leaves, strict=True)]
    return jax.tree_util.tree_unflatten(treedef, leaves)


@pytest.mark.parametrize(
    ("order", "degrees", "hidden", "conditional"),
    CONFIGS,
)
def test_jacobian_is_strictly_lower_triangular_in_the_order(order, degrees, hidden, conditional):
    made = MADE(D, hidden, params_per_dim=3, input_order=order, hidden_degrees=degrees,
                activation="tanh", cond_shape=(2,) if conditional else None, seed=5)
    x = jax.random.normal(jax.random.key(1), (D,))
    cond = jnp.array([0.3, -1.2]) if conditional else None
    params = random_params(made, x, cond)
    jac = np.asarray(jax.jacobian(lambda v: made.apply({"params": params}, v, cond))(x))
    assert jac.shape == (D, 3, D)
    order_ = generation_order(made)
    dependence = np.abs(jac).max(axis=1)[np.ix_(order_, order_)]  # [out k-th, in j-th]
    upper = np.triu(dependence)
    assert np.all(upper == 0.0), f"outputs depend on later or same inputs:\n{dependence}"
    if degrees == "equal" and hidden:
        # With equal degrees and at least D - 1 units per layer, every allowed edge exists.
        lower = dependence[np.tril_indices(D, -1)]
        assert np.all(lower > 0.0), f"missing autoregressive connections:\n{dependence}"


def test_conditioning_feeds_every_output_including_the_first():
    made = MADE(D, (9, 9), cond_shape=(2,))
    x = jnp.zeros((D,))
    cond = jnp.ones((2,))
    params = random_params(made, x, cond)
    jac = np.asarray(jax.jacobian(lambda c: made.apply({"params": params}, x, c))(cond))
    assert np.all(np.abs(jac).max(axis=(1, 2)) > 0.0)


def numpy_made(params, x, cond, input_degrees, hidden_degrees, act):
    """An independent NumPy MADE: masks written from the degree rule, not made_masks."""
    h, prev = np.asarray(x, np.float64), input_degrees
    for index, deg in enumerate(hidden_degrees):
        p = params[f"hidden_{index}"]
        mask = np.array([[1.0 if a <= b else 0.0 for b in deg] for a in prev])
        h = act(h @ (np.asarray(p["kernel"]) * mask) + np.asarray(p["bias"])
                + (cond @ np.asarray(p["cond_kernel"]) if cond is not None else 0.0))
        prev = deg
    p = params["output"]
    mask = np.array([[1.0 if a < d else 0.0 for d in input_degrees] for a in prev])
    out = np.einsum("nh,hdk->ndk", h, np.asarray(p["kernel"]) * mask[:, :, None])
    out = out + np.asarray(p["bias"])
    if cond is not None:
        out = out + np.einsum("nc,cdk->ndk", cond, np.asarray(p["cond_kernel"]))
    return out


@pytest.mark.parametrize("activation", ["relu", jax.nn.relu])
def test_matches_numpy_reference(activation):
    made = MADE(D, (9, 9), params_per_dim=3, input_order=(3, 5, 0, 2, 4, 1),
                activation=activation, cond_shape=(2,))
    x = np.random.default_rng(0).normal(size=(3, D)).astype(np.float32)
    cond = np.random.default_rng(1).normal(size=(3, 2)).astype(np.float32)
    params = random_params(made, jnp.asarray(x[0]), jnp.asarray(cond[0]))
    # Degrees of input_order (3, 5, 0, 2, 4, 1): dimension 3 first, then 5, 0, 2, 4, 1.
    input_degrees = np.array([3, 6, 4, 1, 5, 2])
    hidden_degrees = [np.array([1, 1, 2, 2, 3, 3, 4, 4, 5])] * 2
    expected = numpy_made(params, x, cond, input_degrees, hidden_degrees,
                          lambda a: np.maximum(a, 0.0))
    actual = made.apply({"params": params}, jnp.asarray(x), jnp.asarray(cond))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def test_degrees():
    deg = made_degrees(5, (10, 3), "reversed", "equal")
    np.testing.assert_array_equal(deg.inputs, [5, 4, 3, 2, 1])
    np.testing.assert_array_equal(np.bincount(deg.hidden[0], minlength=5)[1:], [3, 2, 3, 2])
    np.testing.assert_array_equal(deg.hidden[1], [1, 2, 3])  # fewer units than degrees
    rnd = made_degrees(7, (50, 50), "random", "random", seed=2)
    assert sorted(rnd.inputs.tolist()) == list(range(1, 8))
    assert rnd.hidden[0].min() >= 1 and rnd.hidden[0].max() <= 6
    assert rnd.hidden[1].min() >= rnd.hidden[0].min()
    assert made_degrees(7, (50, 50), "random", "random", seed=3).inputs.tolist() != \
        rnd.inputs.tolist()
    masks = made_masks(made_degrees(1, (4,)))
    assert masks[0].sum() == 0 and masks[1].sum() == 4  # D = 1: output is a constant


def test_init_is_near_identity():
    made = MADE(D, (9, 9, 9), params_per_dim=3)
    x = jax.random.normal(jax.random.key(0), (D,))
    out = made.apply(made.init(jax.random.key(1), x), x)
    assert out.shape == (D, 3)
    assert float(jnp.max(jnp.abs(out))) < 0.1


def test_params_follow_the_input_dtype():
    with jax.enable_x64(True):
        made = MADE(3, (4,))
        params = made.init(jax.random.key(0), jnp.zeros((3,), jnp.float64))["params"]
        assert params["hidden_0"]["kernel"].dtype == jnp.float64


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(input_order=(0, 1, 1)), "permutation of 0..2"),
        (dict(input_order="sideways"), "input_order must be one of"),
        (dict(hidden_degrees="even"), "hidden_degrees must be one of"),
        (dict(activation="swish2"), "activation"),
        (dict(params_per_dim=0), "params_per_dim"),
        (dict(hidden_sizes=(0,)), "hidden sizes must be >= 1"),
    ],
)
def test_bad_configuration_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MADE(3, **kwargs)


def test_bad_inputs_are_rejected_with_shapes():
    made = MADE(3, (4,), cond_shape=(2,))
    with pytest.raises(ValueError, match=r"last axis of size 3.*\(5, 4\)"):
        made.init(jax.random.key(0), jnp.zeros((5, 4)), jnp.zeros((5, 2)))
    with pytest.raises(ValueError, match="pass cond"):
        made.init(jax.random.key(0), jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match="unconditional"):
        MADE(3, (4,)).init(jax.random.key(0), jnp.zeros((5, 3)), jnp.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"trailing shape \(2,\).*\(5, 3\)"):
        made.init(jax.random.key(0), jnp.zeros((5, 3)), jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"batch shape \(4,\).*data's batch shape \(5,\)"):
        made.init(jax.random.key(0), jnp.zeros((5, 3)), jnp.zeros((4, 2)))


def test_cond_shape_is_a_vector_shape():
    assert MADE(3, (4,), cond_shape=2).cond_shape == (2,)
    with pytest.raises(ValueError, match=r"cond_shape=\(C,\).*\(2, 3\).*cond_shape=\(6,\)"):
        MADE(3, (4,), cond_shape=(2, 3))
    with pytest.raises(ValueError, match=r"cond_shape must have sizes >= 1, got \(0,\)"):
        MADE(3, (4,), cond_shape=(0,))


def test_cond_broadcasts_with_the_batch():
    made = MADE(3, (4,), cond_shape=(2,))
    params = random_params(made, jnp.zeros((3,)), jnp.zeros((2,)))
    x = jax.random.normal(jax.random.key(0), (5, 3))
    cond = jnp.array([0.5, -1.0])
    np.testing.assert_allclose(made.apply({"params": params}, x, cond),
                               made.apply({"params": params}, x, jnp.tile(cond, (5, 1))),
                               rtol=1e-6)
