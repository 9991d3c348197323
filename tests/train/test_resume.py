"""Kill -9 a training process mid-run, resume it: the result is the uninterrupted one, bit
for bit."""

import json
import signal
import time

import numpy as np

from tests.train.subprocess_util import run_module, start_module

CHILD = "tests.train.resume_child"


def records_without_timing(path):
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("examples_per_s", "seconds")}
            for r in records]


def test_resume_after_sigkill_equals_the_uninterrupted_run_bit_for_bit(tmp_path):
    run_module(CHILD, tmp_path / "full", tmp_path / "full.npz")

    killed = tmp_path / "killed"
    proc = start_module(CHILD, killed, tmp_path / "never.npz", "--slow", 0.05)
    try:
        deadline = time.monotonic() + 300
        while not (killed / "checkpoints" / "latest" / "10").exists():
            assert proc.poll() is None, "the child ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint at step 10 after 300 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        returncode = proc.wait()
    assert returncode == -signal.SIGKILL and not (tmp_path / "never.npz").exists()

    run_module(CHILD, killed, tmp_path / "resumed.npz", "--resume")
    full, resumed = np.load(tmp_path / "full.npz"), np.load(tmp_path / "resumed.npz")
    assert sorted(full) == sorted(resumed) and any(k.startswith("best") for k in full)
    for name in full:
        np.testing.assert_array_equal(resumed[name], full[name], err_msg=name)
    assert records_without_timing(killed / "metrics.jsonl") == records_without_timing(
        tmp_path / "full" / "metrics.jsonl")
