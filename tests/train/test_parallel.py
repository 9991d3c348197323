"""1 vs 8 fake CPU devices under jit (sharded), shard_map and pmap: same params after 20
steps as one device on the global batch."""

import fcntl
import os

import numpy as np
import pytest

from tests.train.subprocess_util import run_module


@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    """The 8-device run (about a minute), once per test session: pytest-xdist workers share
    the parent of their temporary directories, and the first to take the lock runs it."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # this session's
    out = shared / "parity.npz"
    with open(shared / "parity.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not out.exists():
            run_module("tests.train.parity_child", out.with_suffix(".partial.npz"), devices=8)
            out.with_suffix(".partial.npz").rename(out)
    return dict(np.load(out))


@pytest.mark.parametrize("mode", ["jit", "shard_map", "pmap"])
@pytest.mark.parametrize("devices", [1, 8])
def test_data_parallel_training_matches_one_device_on_the_global_batch(parity, mode, devices):
    names = [k[len("reference"):] for k in parity if k.startswith("reference")]
    assert any("mean" in name for name in names)  # the batch-norm statistics are compared
    for name in names:
        np.testing.assert_allclose(parity[f"{mode}/{devices}{name}"], parity[f"reference{name}"],
                                   rtol=2e-4, atol=2e-5, err_msg=name)


@pytest.mark.parametrize("mode", ["jit", "shard_map", "pmap"])
def test_params_model_state_and_metrics_stay_identical_on_every_device(parity, mode):
    assert parity[f"identical/{mode}/8"]


def test_validation_with_a_ragged_last_batch_is_the_exact_mean(parity):
    np.testing.assert_allclose(parity["fit/validation_loss"], parity["fit/direct_loss"],
                               rtol=1e-5)


def test_a_ragged_training_batch_is_trimmed_to_the_devices_with_a_warning(parity):
    assert len(parity["trim/warnings"]) == 1
    assert "last 5 rows are left out" in str(parity["trim/warnings"][0])
    assert int(parity["trim/steps"]) == 3
    names = [k[len("trim/fit"):] for k in parity if k.startswith("trim/fit")]
    assert names
    for name in names:
        np.testing.assert_array_equal(parity[f"trim/fit{name}"], parity[f"trim/by_hand{name}"])
