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
import jflows.nets.autoregressive as ar
from jflows.distributions import mog_made
from jflows.distributions.mixture import mixture_step
from jflows.flows import maf
from jflows.nets import MADE
from jflows.nets.made_sampling import padding_factor
from jflows.testing import dense_log_det

ROOT = pathlib.Path(__file__).resolve().parents[2]
D = 6
ORDERS = ["natural", "reversed", "random", (3, 5, 0, 2, 4, 1)]
DEGREES = ["equal", "random"]
# Every order x degree option at depth 1 without and depth 3 with conditioning, plus no
# hidden layer, a layer narrower than D - 1 (empty degree blocks) and D = 1.
# The default suite runs every order once and both degree options at both depths; the
# rest of the grid is slow.
GRID = [(o, d, h, c) for o, d in itertools.product(ORDERS, DEGREES)
        for h, c in [((9,), None), ((7, 9, 5), (2,))]]
DEFAULT = {("natural", "equal", (9,), None), ("reversed", "random", (7, 9, 5), (2,)),
           ("random", "equal", (7, 9, 5), (2,)), ("random", "random", (9,), None),
           ((3, 5, 0, 2, 4, 1), "random", (7, 9, 5), (2,))}
CONFIGS = [config if config in DEFAULT else pytest.param(*config, marks=pytest.mark.slow)
           for config in GRID]
CONFIGS += [("natural", "equal", (), None), ("random", "equal", (), (2,)),
            ("natural", "equal", (3,), None), ("random", "random", (2, 3), (2,))]
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


@pytest.mark.parametrize(("order", "degrees", "hidden", "cond_shape"), CONFIGS)
def test_incremental_sampling_equals_the_d_pass_loop(order, degrees, hidden, cond_shape):
    made = MADE(D, hidden, input_order=order, hidden_degrees=degrees, cond_shape=cond_shape,
                seed=3, output_init_scale=0.5)
    fast, plain, params, state = both_paths(made)
    u = jax.random.normal(jax.random.key(1), (2, 3, D))
    cond = None if cond_shape is None else jax.random.normal(jax.random.key(2), (2, 3, 2))
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
    made = MADE(D, (9, 9), input_order="random", cond_shape=(2,), seed=1,
                output_init_scale=1.0)
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
    fast = mog_made(D, 3, (9, 9), input_order="random", cond_shape=(2,), seed=2)
    plain = mog_made(D, 3, (9, 9), input_order="random", cond_shape=(2,), seed=2,
                     sampling="passes")
    params, state = fast.init(jax.random.key(0))
    params = perturbed(params)
    cond = jax.random.normal(jax.random.key(2), (7, 2))
    x, log_prob = fast.sample_and_log_prob(params, state, jax.random.key(3), (7,), cond=cond)
    x_plain, log_prob_plain = plain.sample_and_log_prob(params, state, jax.random.key(3), (7,),
                                                        cond=cond)
    np.testing.assert_allclose(x, x_plain, **TOL)
    np.testing.assert_allclose(log_prob, log_prob_plain, **TOL)
    # The solver's per-dimension log-probs are the density's.
    np.testing.assert_allclose(log_prob, fast.log_prob(params, state, x, cond=cond),
                               rtol=1e-4, atol=1e-4)


def test_maf_flow_sampling_uses_the_fast_path_and_matches():
    flow = maf(D, 3, (9, 9))
    params, state = flow.init(jax.random.key(0))
    params = perturbed(params, 0.2)
    y, log_prob = flow.sample_and_log_prob(params, state, jax.random.key(1), (8,))
    np.testing.assert_allclose(log_prob, flow.log_prob(params, state, y), rtol=1e-4,
                               atol=1e-4)


def test_maf_and_mog_sampling_run_the_one_solver(monkeypatch):
    """Both models' sampling goes through solve_autoregressive and its incremental MADE
    evaluation (fresh models, so their jitted loops trace with the recorder in place)."""
    calls = []

    def recorded(made, *args):
        calls.append(made.params_per_dim)
        return made_solve(made, *args)

    made_solve = ar.made_solve
    monkeypatch.setattr(ar, "made_solve", recorded)
    bijector = jb.masked_autoregressive(MADE(D, (9,)))
    params, state = bijector.init(jax.random.key(0), jnp.zeros((D,)))
    bijector.forward(params, state, jnp.zeros((2, D)))
    mog = mog_made(D, 3, (9,))
    mog.sample(*mog.init(jax.random.key(0)), jax.random.key(1), (2,))
    assert calls == [2, 9]


def sinh_arcsinh():
    """A custom transformer with K = 3 parameters per dimension (location, log-scale,
    skew): ``x = loc + exp(log_scale) sinh(asinh(u) + skew)``."""

    def forward(theta, u):
        loc, log_scale, skew = theta[..., 0], theta[..., 1], theta[..., 2]
        a = jnp.arcsinh(u) + skew
        log_det = log_scale + jnp.log(jnp.cosh(a)) - 0.5 * jnp.log1p(u**2)
        return loc + jnp.exp(log_scale) * jnp.sinh(a), log_det

    def inverse(theta, x):
        loc, log_scale, skew = theta[..., 0], theta[..., 1], theta[..., 2]
        u = jnp.sinh(jnp.arcsinh((x - loc) * jnp.exp(-log_scale)) - skew)
        return u, -forward(theta, u)[1]

    return ar.Transformer(3, forward, inverse)


def sequential_reference(made, params, forward, u, cond):
    """x solved dimension by dimension in the generation order, one full MADE pass each
    (NumPy loop, float64 outputs): the definition the solver must meet."""
    x = np.zeros(u.shape)
    log_det = np.zeros(u.shape)
    for i in made.generation_order:
        theta = made.apply({"params": params}, jnp.asarray(x, jnp.float32), cond)[..., i, :]
        value, aux = forward(theta, u[..., i])
        x[..., i], log_det[..., i] = value, aux
    return x, log_det.sum(-1)


@pytest.mark.parametrize("sampling", ["auto", "passes"])
def test_a_custom_transformer_plugs_into_the_solver(sampling):
    made = MADE(D, (9, 9), params_per_dim=3, input_order="random", cond_shape=(2,), seed=4,
                output_init_scale=0.5)
    transformer = sinh_arcsinh()
    bijector = jb.masked_autoregressive(made, transformer=transformer, sampling=sampling)
    params, state = bijector.init(jax.random.key(0), jnp.zeros((D,)))
    params = perturbed(params)
    u = jax.random.normal(jax.random.key(1), (4, D))
    cond = jax.random.normal(jax.random.key(2), (4, 2))
    x, log_det, _ = bijector.forward(params, state, u, cond=cond)
    x_ref, log_det_ref = sequential_reference(made, params, transformer.forward, u, cond)
    np.testing.assert_allclose(x, x_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(log_det, log_det_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(log_det[0], dense_log_det(
        lambda v: bijector.forward(params, state, v, cond=cond[0])[0], u[0]),
        rtol=1e-4, atol=1e-4)
    u_back, log_det_back, _ = bijector.inverse(params, state, x, cond=cond)
    np.testing.assert_allclose(u_back, u, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(log_det_back, -log_det, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", ["auto", "passes"])
def test_the_mixture_step_in_the_solver_is_the_mog_sampler(method):
    """solve_autoregressive with MoG's step and the same noise reproduces mog_made.sample,
    and meets the dimension-by-dimension definition."""
    c = 3
    dist = mog_made(D, c, (9,), input_order="random", seed=2, sampling=method)
    made = MADE(D, (9,), params_per_dim=3 * c, input_order="random", seed=2,
                output_init_scale=1.0)
    params, state = dist.init(jax.random.key(0))
    key = jax.random.key(5)
    gumbel_key, normal_key = jax.random.split(key)
    noise = (jax.random.gumbel(gumbel_key, (6, D, c)), jax.random.normal(normal_key, (6, D)))
    x, _ = ar.solve_autoregressive(ar.made_conditioner(made), params, mixture_step(c), noise,
                                   (6, D), method=method)
    np.testing.assert_allclose(x, dist.sample(params, state, key, (6,)), **TOL)
    expected = np.zeros((6, D))
    for i in made.generation_order:
        theta = made.apply({"params": params}, jnp.asarray(expected, jnp.float32))[:, i]
        expected[:, i] = mixture_step(c)(theta, (noise[0][:, i], noise[1][:, i]))[0]
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-5)


def test_solver_errors_name_the_shapes():
    conditioner = ar.made_conditioner(MADE(D, (9,)))
    params = conditioner.init(jax.random.key(0), jnp.zeros((D,)))
    affine = jb.masked_autoregressive(MADE(D, (9,)))

    def affine_step(theta, u):
        return u * jnp.exp(theta[..., 1]) + theta[..., 0], theta[..., 1]

    u = jnp.zeros((3, D))
    with pytest.raises(ValueError, match=r"solution's shape \(3, 6\).*\(4, 6\)"):
        ar.solve_autoregressive(conditioner, params, affine_step, jnp.zeros((4, D)), (3, D))
    with pytest.raises(ValueError, match=r"\(value, aux\).*\(3, 6\)"):
        ar.solve_autoregressive(conditioner, params, lambda t, n: (t, n), u, (3, D))
    with pytest.raises(ValueError, match="must be one of"):
        ar.solve_autoregressive(conditioner, params, affine_step, u, (3, D), method="fast")
    with pytest.raises(ValueError, match="unconditional"):
        ar.solve_autoregressive(conditioner, params, affine_step, u, (3, D),
                                cond=jnp.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"event_size\).*\(3, 4\)"):
        affine.forward(*affine.init(jax.random.key(0), u), jnp.zeros((3, 4)))


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
