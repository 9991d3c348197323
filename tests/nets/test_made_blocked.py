"""The degree-blocked MADE evaluation against the dense masked product (the reference):
outputs and gradients for every order / degree / depth / conditioning option and number of
groups, under jit and vmap, every MAF registry case, data-parallel training on 8 fake
devices, and the static layout itself."""

import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jflows.nets import MADE
from jflows.nets.made_blocked import GROUPS_BY_UNITS, default_groups
from tests.nets.test_made import random_params
from tests.registry.maf import BUILDERS, CASES, DENSE_TWINS
from tests.train.subprocess_util import run_module

D = 6
ORDERS = ["natural", "reversed", "random", (3, 5, 0, 2, 4, 1)]
DEGREES = ["equal", "random"]
# Every order x degree option at depth 1 without and depth 3 (one layer narrower than
# D - 1) with conditioning, each in 2 and 4 groups; plus no hidden layer, D = 1 and the
# measured default groups. The default suite runs every order, degree option, depth and
# group count at least once; the rest of the grid is slow.
GRID = [(D, o, d, h, c, g) for o, d in itertools.product(ORDERS, DEGREES)
        for (h, c), g in itertools.product([((9,), None), ((11, 4, 13), (2,))], (2, 4))]
DEFAULT = {(D, "natural", "equal", (9,), None, 2), (D, "reversed", "random", (11, 4, 13), (2,), 4),
           (D, "random", "equal", (11, 4, 13), (2,), 2), (D, "random", "random", (9,), None, 4),
           (D, (3, 5, 0, 2, 4, 1), "random", (11, 4, 13), (2,), 2)}
CONFIGS = [config if config in DEFAULT else pytest.param(*config, marks=pytest.mark.slow)
           for config in GRID]
CONFIGS += [(D, "random", "equal", (), (2,), 3), (1, "natural", "equal", (5,), None, 2),
            (D, "natural", "equal", (70, 70), None, None)]


def pair(size, order, degrees, hidden, cond_shape, groups, activation="tanh"):
    kwargs = dict(params_per_dim=3, input_order=order, hidden_degrees=degrees,
                  activation=activation, cond_shape=cond_shape, seed=5)
    return (MADE(size, hidden, blocked_groups=groups, **kwargs),
            MADE(size, hidden, evaluation="dense", **kwargs))


def inputs(size, cond_shape, batch=(7,)):
    x = jax.random.normal(jax.random.key(1), (*batch, size))
    cond = None if cond_shape is None else jax.random.normal(jax.random.key(2),
                                                              (*batch, *cond_shape))
    return x, cond


def assert_trees_close(actual, expected, rtol=1e-5, atol=1e-5):
    for a, e in zip(jax.tree_util.tree_leaves(actual), jax.tree_util.tree_leaves(expected),
                    strict=True):
        scale = float(jnp.max(jnp.abs(e))) if e.size else 0.0
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol * max(scale, 1.0))


@pytest.mark.parametrize(("size", "order", "degrees", "hidden", "cond_shape", "groups"),
                         CONFIGS)
def test_outputs_and_gradients_match_the_dense_product(size, order, degrees, hidden,
                                                       cond_shape, groups):
    blocked, dense = pair(size, order, degrees, hidden, cond_shape, groups)
    x, cond = inputs(size, cond_shape)
    params = random_params(dense, x, cond)
    assert jax.tree_util.tree_structure(blocked.init(jax.random.key(0), x, cond)) == \
        jax.tree_util.tree_structure({"params": params})
    weights = jax.random.normal(jax.random.key(3), x.shape + (3,))

    def loss(made):
        def fn(p, v, c):
            return jnp.sum(weights * jnp.sin(made.apply({"params": p}, v, c)))
        return jax.jit(jax.value_and_grad(fn, argnums=(0, 1, 2) if cond is not None else (0, 1)))

    value, grads = loss(blocked)(params, x, cond)
    dense_value, dense_grads = loss(dense)(params, x, cond)
    np.testing.assert_allclose(value, dense_value, rtol=1e-5, atol=1e-4)
    assert_trees_close(grads, dense_grads)
    assert_trees_close(blocked.apply({"params": params}, x, cond),
                       dense.apply({"params": params}, x, cond))


@pytest.mark.parametrize("activation", ["relu", pytest.param(jax.nn.gelu, marks=pytest.mark.slow)])
def test_vmap_over_params_and_batch_and_broadcast_cond(activation):
    """vmap over stacked params (as the scanned MAF stack) and over x; cond broadcast."""
    blocked, dense = pair(D, "reversed", "random", (10, 10), (2,), 3, activation)
    x, cond = inputs(D, (2,), batch=(4, 5))
    stacked = jax.vmap(lambda k: random_params(dense, x[0, 0], cond[0, 0], seed=k))(
        jnp.arange(3))

    def apply(made):
        per_params = jax.vmap(lambda p: made.apply({"params": p}, x, cond[0, 0]))
        return jax.jit(per_params)(stacked)

    def apply_vmapped_x(made):
        p = jax.tree_util.tree_map(lambda leaf: leaf[0], stacked)
        return jax.vmap(lambda v, c: made.apply({"params": p}, v, c))(x, cond)

    assert_trees_close(apply(blocked), apply(dense))
    assert_trees_close(apply_vmapped_x(blocked), apply_vmapped_x(dense))


@pytest.mark.parametrize("name", list(BUILDERS))
def test_every_registry_case_matches_its_dense_twin(name):
    """Both directions, log-dets, the training pass's state and its gradients."""
    case = next(case for case in CASES if case.name == name)
    blocked, dense = BUILDERS[name](), DENSE_TWINS[name]()
    x = jax.random.normal(jax.random.key(0), (6, *case.event_shape))
    kwargs = {}
    if case.cond_shape is not None:
        kwargs["cond"] = jax.random.normal(jax.random.key(1), (6, *case.cond_shape))
    params, state = blocked.init(jax.random.key(2), x)
    params = jax.tree_util.tree_map(lambda p: p + 0.3 * jnp.sin(jnp.arange(p.size).reshape(
        p.shape) + p.size), params)
    for direction in ("forward", "inverse"):
        calls = [getattr(b, direction) for b in (blocked, dense)]
        results = [jax.jit(lambda p, f=f: f(p, state, x, train=True, **kwargs))(params)
                   for f in calls]
        assert_trees_close(*results)

    def loss(bijector):
        def fn(p):
            z, log_det, _ = bijector.inverse(p, state, x, train=True, **kwargs)
            return jnp.mean(-0.5 * jnp.sum(z**2, -1) + log_det)
        return jax.jit(jax.grad(fn))(params)

    assert_trees_close(loss(blocked), loss(dense))


def test_layout_reads_only_what_the_masks_allow_and_halves_the_work():
    made = MADE(64, (512, 512), blocked_groups=8)
    layouts, masks = made.blocked_layout, made.masks
    for layout, mask in zip(layouts, masks, strict=True):
        assert layout.rows is None and layout.cols is None  # equal degrees: in place
        dense_rows, width = mask.shape[0], 0
        work = 0
        for block in layout.blocks:
            (r0, r1), (c0, c1) = block.rows, block.cols
            assert c0 == width
            width = c1
            allowed = mask[:, c0:c1].any(axis=1)
            assert allowed[r0:r1].all() and not allowed[:r0].any() and not allowed[r1:].any()
            work += (r1 - r0) * (c1 - c0)
        assert width == mask.shape[1] and len(layout.blocks) == 8
        assert work / (dense_rows * mask.shape[1]) < 0.6  # (G + 1) / 2G = 0.56


def test_random_orders_and_degrees_sort_units_and_reversed_order_reads_suffixes():
    layouts = MADE(D, (9, 9), input_order="random", hidden_degrees="random", seed=1,
                   blocked_groups=2).blocked_layout
    assert all(layout.cols is not None for layout in layouts)
    reversed_layouts = MADE(D, (9,), input_order="reversed", blocked_groups=3).blocked_layout
    first = reversed_layouts[0]
    assert first.rows is None and all(block.rows[1] == D for block in first.blocks)


def test_default_groups_is_the_measured_table():
    assert [default_groups(t) for t, _ in GROUPS_BY_UNITS] == [g for _, g in GROUPS_BY_UNITS]
    assert default_groups(1) == 1 and default_groups(10_000) == GROUPS_BY_UNITS[-1][1]


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(evaluation="sparse"), "evaluation must be one of"),
    (dict(blocked_groups=0), "blocked_groups must be >= 1"),
])
def test_bad_options_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MADE(3, (4,), **kwargs)


def test_data_parallel_training_on_eight_devices_matches_dense_on_one():
    out = run_module("tests.nets.made_blocked_multidevice_script", devices=8, timeout=300)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result.pop("devices") == 8
    for name, value in result.items():
        assert value < 1e-5, (name, value)
