"""jflows.collectives: which named axes are bound where code is traced, and means over them.

One CPU device here; 8 devices (shard_map over 8, plain jit of NamedSharding inputs, a
partially manual shard_map) are checked by tests/bijectors/test_multidevice.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec

from jflows.collectives import (
    axis_is_bound,
    axis_names,
    bound_axes,
    bound_axis_size,
    pmean_if_bound,
)

try:
    from jax import shard_map
except ImportError:  # older JAX
    from jax.experimental.shard_map import shard_map

X = jnp.arange(12.0).reshape(4, 3)


def seen(axis_name):
    """What the helpers report for ``axis_name``, recorded at trace time."""
    return axis_is_bound(axis_name), bound_axes(axis_name), bound_axis_size(axis_name)


def traced_in(transform, axis_name):
    record = []

    def f(x):
        record.append(seen(axis_name))
        return x

    transform(f)(X)
    return record[0]


def test_axis_names_normalizes_none_one_name_and_tuples():
    assert axis_names(None) == () and axis_names("b") == ("b",)
    assert axis_names(("a", "b")) == ("a", "b")


@pytest.mark.parametrize("transform", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_no_name_is_bound_eagerly_or_under_plain_jit(transform):
    assert traced_in(transform, "batch") == (False, (), 1)
    assert traced_in(transform, None) == (False, (), 1)


def test_vmap_binds_its_axis_name():
    assert traced_in(lambda f: jax.vmap(f, axis_name="batch"), "batch") == (True, ("batch",), 4)
    assert traced_in(lambda f: jax.vmap(f, axis_name="other"), "batch") == (False, (), 1)


def test_tuples_are_bound_when_every_name_is_and_reduce_over_the_bound_ones():
    nested = lambda f: jax.vmap(jax.vmap(f, axis_name="inner"), axis_name="outer")  # noqa: E731
    assert traced_in(nested, ("outer", "inner")) == (True, ("outer", "inner"), 12)
    assert traced_in(nested, ("outer", "missing")) == (False, ("outer",), 4)


def test_shard_map_and_pmap_bind_their_axis_names():
    mesh = Mesh(np.array(jax.devices()[:1]), ("batch",))
    spec = PartitionSpec("batch")
    sharded = lambda f: jax.jit(shard_map(f, mesh=mesh, in_specs=spec, out_specs=spec))  # noqa: E731
    assert traced_in(sharded, "batch") == (True, ("batch",), 1)
    mapped = lambda f: lambda x: jax.pmap(f, axis_name="batch")(x[None])  # noqa: E731
    assert traced_in(mapped, "batch") == (True, ("batch",), 1)


def test_pmean_if_bound_is_the_mean_over_the_bound_axis_and_identity_elsewhere():
    tree = {"a": X, "b": (X[:, 0],)}
    means = jax.vmap(lambda t: pmean_if_bound(t, "batch"), axis_name="batch")(tree)
    np.testing.assert_allclose(means["a"], jnp.broadcast_to(X.mean(0), X.shape))
    np.testing.assert_allclose(means["b"][0], jnp.full(4, X[:, 0].mean()))
    assert pmean_if_bound(tree, "batch") is tree
    assert pmean_if_bound(tree, None) is tree
    np.testing.assert_allclose(jax.jit(lambda t: pmean_if_bound(t, "batch"))(tree)["a"], X)
    # A tuple with an unbound name reduces over the bound one only (no NameError).
    partial = jax.vmap(lambda t: pmean_if_bound(t, ("batch", "missing")), axis_name="batch")(X)
    np.testing.assert_allclose(partial, jnp.broadcast_to(X.mean(0), X.shape))
