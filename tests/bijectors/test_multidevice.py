"""Bijectors on 8 fake devices: batch-norm statistics over one row per device equal one batch
under pmap, shard_map (full and partially manual) and a plain jit of NamedSharding inputs."""

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEVICES = 8


def test_flow_with_batch_norm_on_eight_devices_equals_one_device():
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={DEVICES}",
               JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, str(ROOT / "tests/bijectors/multidevice_script.py")],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["devices"] == DEVICES and result["input_shards"] == DEVICES
    # axis_name bound inside shard_map (8 shards), unbound under plain jit, and only the
    # manual "hosts" axis (2 shards) bound in the partially manual shard_map.
    assert result["seen"] == {"shard_map": [True, DEVICES], "jit": [False, 1],
                              "partial": [False, 2]}
    assert result["low_variance_dims"] == [0, 0, 0, 0]
    for name, value in result["errors"].items():
        assert value < 1e-5, (name, value)
