"""Two processes on 127.0.0.1 (CPU collectives over gloo), two devices each, train as one
4-device run under jit (sharded), shard_map and pmap: the same params as one device on the whole
global batch, checkpoints written together."""

import socket
import subprocess

import numpy as np
import pytest

from tests.train.subprocess_util import start_module


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_like_one_device_on_the_global_batch(tmp_path):
    port = free_port()
    logs = [(tmp_path / f"log{i}.txt").open("w") for i in range(2)]  # files: pipes can fill up
    procs = [start_module("tests.train.multihost_child", port, i, tmp_path / "run",
                          tmp_path / f"out{i}.npz", devices=2, stdout=logs[i],
                          stderr=subprocess.STDOUT) for i in range(2)]
    try:
        for p in procs:
            p.wait(timeout=600)
    finally:
        for p, log in zip(procs, logs, strict=True):
            p.kill()
            log.close()
    for i, p in enumerate(procs):
        assert p.returncode == 0, (tmp_path / f"log{i}.txt").read_text()
    first, second = np.load(tmp_path / "out0.npz"), np.load(tmp_path / "out1.npz")
    names = [k[len("reference"):] for k in first if k.startswith("reference")]
    assert any("mean" in n for n in names)
    for mode in ("jit", "shard_map", "pmap"):
        for name in names:
            np.testing.assert_array_equal(first[f"{mode}{name}"], second[f"{mode}{name}"])
            np.testing.assert_allclose(first[f"{mode}{name}"], first[f"reference{name}"],
                                       rtol=2e-4, atol=2e-5, err_msg=f"{mode}{name}")
        loss = first[f"{mode}/validation_loss"]
        np.testing.assert_allclose(loss, first["direct_validation_loss"], rtol=1e-5)
        assert loss == second[f"{mode}/validation_loss"]
        checkpoints = tmp_path / "run" / mode / "checkpoints" / "latest"
        assert sorted(int(p.name) for p in checkpoints.iterdir()) == [8, 10]
