"""The degree-blocked incremental MADE solve equals the plain D-pass loop, everywhere."""

import itertools
import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jflows.bijectors as jb
from jflows.distributions import mog_made
from jflows.flows import maf
from jflows.nets import MADE
from jflows.nets.made_sampling import padding_factor

ROOT = pathlib.Path(__file__).resolve().parents[2]
D = 6
ORDERS = ["natural", "reversed", "random", (3, 5, 0, 2, 4, 1)]
DEGREES = ["equal", "random"]
# Every order x degree option at depth 1 without and depth 3 with conditioning, plus no
# hidden layer, a layer narrower than D - 1 (empty degree blocks) and D = 1.
# The default suite runs every order once and both degree options at both depths; the
# rest of the grid is slow.
GRID = [(o, d, h, c) for o, d in itertools.product(ORDERS, DEGREES)
        for h, c in [((9,), None), ((7, 9, 5), 2)]]
DEFAULT = {("natural", "equal", (9,), None), ("reversed", "random", (7, 9, 5), 2),
           ("random", "equal", (7, 9, 5), 2), ("random", "random", (9,), None),
           ((3, 5, 0, 2, 4, 1), "random", (7, 9, 5), 2)}
CONFIGS = [config if config in DEFAULT else pytest.param(*config, marks=pytest.mark.slow)
           for config in GRID]
CONFIGS += [("natural", "equal", (), None), ("random", "equal", (), 2),
            ("natural", "equal", (3,), None), ("random", "random", (2, 3), 2)]
TOL = dict(rtol=1e-5, atol=1e-5)


def perturbed(tree, scale=0.2):
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    keys = jax.random.split(jax.random.key(9), len(leaves))
    return jax.tree_util.tree_unflatten(treedef, [
        leaf + scale * jax.random.normal(k, leaf.shape, leaf.dtype)
        for k, leaf in zip(keys, leaves, strict=True)])


def both_paths(made, bound=None):
    fast = jb.masked_autoregressive(made, log_scale_bound=bound)
    plain = jb.masked_autoregressive(made, log_scale_bound=bound, sampling="passes")
    params, state = fast.init(jax.random.key(0), jnp.zeros((made.event_size,)))
    return fast, plain, perturbed(params), state


@pytest.mark.parametrize(("order", "degrees", "hidden", "cond_size"), CONFIGS)
def test_incremental_sampling_equals_the_d_pass_loop(order, degrees, hidden, cond_size):
    made = MADE(D, hidden, input_order=order, hidden_degrees=degrees, cond_size=cond_size,
                seed=3, output_init_scale=0.5)
    fast, plain, params, state = both_paths(made)
    u = jax.random.normal(jax.random.key(1), (2, 3, D))
    cond = None if cond_size is None else jax.random.normal(jax.random.key(2), (2, 3, 2))
    x_fast, log_det_fast, _ = fast.forward(params, state, u, cond=cond)
    x_plain, log_det_plain, _ = plain.forward(params, state, u, cond=cond)
    np.testing.assert_allclose(x_fast, x_plain, **TOL)
    np.testing.assert_allclose(log_det_fast, log_det_plain, **TOL)
    # Round trip with the density direction, and the IAF density (its inverse) too.
    u_back, log_det_back, _ = fast.inverse(params, state, x_fast, cond=cond)
    np.testing.assert_allclose(u_back, u, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(log_det_back, -log_det_fast, rtol=1e-4, atol=1e-4)
    iaf = jb.inverse_autoregressive(made)
    np.testing.assert_allclose(iaf.inverse(params, state, u, cond=cond)[0], x_plain, **TOL)


def test_one_dimension_and_bounded_log_scale():
    fast, plain, params, state = both_paths(MADE(1, (4,), output_init_scale=1.0), bound=0.5)
    u = jax.random.normal(jax.random.key(1), (5, 1))
    for a, b in zip(fast.forward(params, state, u)[:2], plain.forward(params, state, u)[:2],
                    strict=True):
        np.testing.assert_allclose(a, b, **TOL)


def test_fast_path_under_jit_vmap_and_grad():
    made = MADE(D, (9, 9), input_order="random", cond_size=2, seed=1, output_init_scale=1.0)
    fast, plain, params, state = both_paths(made)
    u = jax.random.normal(jax.random.key(1), (4, D))
    cond = jax.random.normal(jax.random.key(2), (4, 2))

    def sample(bijector):
        def one(p, v, c):
            return bijector.forward(p, state, v, cond=c)[0]
        return jax.jit(jax.vmap(one, in_axes=(None, 0, 0)))

    np.testing.assert_allclose(sample(fast)(params, u, cond), sample(plain)(params, u, cond),
                               **TOL)

    def loss(bijector):
        return lambda p: jnp.sum(bijector.forward(p, state, u, cond=cond)[0] ** 2)

    grads_fast = jax.grad(loss(fast))(params)
    grads_plain = jax.grad(loss(plain))(params)
    for a, b in zip(jax.tree_util.tree_leaves(grads_fast), jax.tree_util.tree_leaves(grads_plain),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def sub_jaxprs(eqn):
    for value in eqn.params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if hasattr(item, "eqns"):
                yield item
            elif hasattr(item, "jaxpr") and hasattr(item.jaxpr, "eqns"):
                yield item.jaxpr


def loop_matmul_widths(jaxpr, batch, in_loop=False):
    """Output widths (the output axes other than the ``batch`` one, whichever the layout)
    of every dot_general inside a loop (while or scan), recursively."""
    widths = []
    for eqn in jaxpr.eqns:
        if in_loop and eqn.primitive.name == "dot_general":
            shape = list(eqn.outvars[0].aval.shape)
            shape.remove(batch)
            widths += shape
        for sub in sub_jaxprs(eqn):
            widths += loop_matmul_widths(sub, batch,
                                         in_loop or eqn.primitive.name in ("while", "scan"))
    return widths


@pytest.mark.parametrize(("sampling", "expected"), [("auto", {4, 2}), ("passes", {44, 24})])
def test_the_loop_multiplies_by_one_degree_block(sampling, expected):
    """Incremental: the loop's matmuls are one degree block wide (ceil(44 / 11) = 4 hidden
    units, 2 outputs); the plain loop's are the whole layer (44 units, 12 x 2 outputs)."""
    bijector = jb.masked_autoregressive(MADE(12, (44,)), sampling=sampling)
    params, state = bijector.init(jax.random.key(0), jnp.zeros((12,)))
    jaxpr = jax.make_jaxpr(lambda u: bijector.forward(params, state, u))(jnp.zeros((3, 12)))
    assert set(loop_matmul_widths(jaxpr.jaxpr, batch=3)) == expected


def test_padding_factor():
    assert padding_factor(MADE(8, (100, 100))) == pytest.approx(8 * 15 / 100)
    assert padding_factor(MADE(784, (1024,))) == pytest.approx(784 * 2 / 1024)


def test_mog_made_fast_sampling_equals_the_d_pass_loop():
    fast = mog_made(D, 3, (9, 9), input_order="random", cond_size=2, seed=2)
    plain = mog_made(D, 3, (9, 9), input_order="random", cond_size=2, seed=2,
                     sampling="passes")
    params = perturbed(fast.init(jax.random.key(0)))
    cond = jax.random.normal(jax.random.key(2), (7, 2))
    np.testing.assert_allclose(fast.sample(params, jax.random.key(3), (7,), cond=cond),
                               plain.sample(params, jax.random.key(3), (7,), cond=cond),
                               **TOL)


def test_maf_flow_sampling_uses_the_fast_path_and_matches():
    flow = maf(D, 3, (9, 9))
    params, state = flow.init(jax.random.key(0))
    params = perturbed(params, 0.2)
    y, log_prob = flow.sample_and_log_prob(params, state, jax.random.key(1), (8,))
    np.testing.assert_allclose(log_prob, flow.log_prob(params, state, y)[0], rtol=1e-4,
                               atol=1e-4)


def test_both_paths_under_pmap_and_shard_map_on_four_devices():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    script = ROOT / "tests/nets/made_sampling_multidevice_script.py"
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result.pop("devices") == 4
    for name, value in result.items():
        assert value < 1e-5, (name, value)
