"""BatchIterator: determinism, resume-at-step, remainders, process sharding; device split
and prefetch."""

from __future__ import annotations

import itertools
import threading
import time

import jax
import numpy as np
import pytest

from jflows.data.iterator import BatchIterator, prefetch_to_device, split_for_devices


def _data(n=23):
    return {"x": np.arange(n * 2).reshape(n, 2).astype(np.float32), "i": np.arange(n)}


def _ids(batches):
    return [b["i"].tolist() for b in batches]


def test_epoch_order_depends_only_on_seed_and_epoch():
    it = BatchIterator(_data(), 5, seed=7)
    again = BatchIterator(_data(), 5, seed=7)
    assert _ids(it.epoch(2)) == _ids(again.epoch(2))
    assert _ids(it.epoch(0)) != _ids(it.epoch(1))
    assert _ids(BatchIterator(_data(), 5, seed=8).epoch(0)) != _ids(it.epoch(0))
    perm = np.random.default_rng([7, 3]).permutation(23)
    assert _ids(it.epoch(3))[0] == perm[:5].tolist()
    batch = next(it.epoch(0))
    np.testing.assert_array_equal(batch["x"][:, 0], 2 * batch["i"])   # leaves stay aligned


@pytest.mark.parametrize("drop", [True, False])
def test_remainder_handling(drop):
    it = BatchIterator(_data(23), 5, seed=0, drop_remainder=drop)
    batches = _ids(it.epoch(0))
    assert it.steps_per_epoch == len(batches) == (4 if drop else 5)
    sizes = [len(b) for b in batches]
    assert sizes == ([5] * 4 if drop else [5, 5, 5, 5, 3])
    seen = sorted(sum(batches, []))
    assert len(seen) == len(set(seen)) and len(seen) == (20 if drop else 23)


def test_no_shuffle_keeps_row_order():
    it = BatchIterator(_data(10), 4, shuffle=False, drop_remainder=False)
    assert _ids(it.epoch(5)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


@pytest.mark.parametrize("step", [0, 3, 4, 9, 13])
def test_resume_from_step_equals_uninterrupted_run(step):
    it = BatchIterator(_data(23), 5, seed=1)
    uninterrupted = _ids(itertools.islice(it.from_step(0), 20))
    resumed = _ids(itertools.islice(BatchIterator(_data(23), 5, seed=1).from_step(step),
                                    20 - step))
    assert resumed == uninterrupted[step:]
    assert uninterrupted[4] == _ids(it.epoch(1))[0]   # epochs chained at the boundary


@pytest.mark.parametrize("drop", [True, False])
def test_processes_cover_each_global_batch_exactly_once(drop):
    count = 3
    its = [BatchIterator(_data(25), 6, seed=2, drop_remainder=drop, process_index=p,
                         process_count=count) for p in range(count)]
    for step in range(2 * its[0].steps_per_epoch):
        parts = [next(itertools.islice(it.from_step(step), 1))["i"] for it in its]
        np.testing.assert_array_equal(np.concatenate(parts), its[0].global_indices(step))
        if drop:
            assert [len(p) for p in parts] == [2, 2, 2]


def test_defaults_to_jax_process_and_validates():
    it = BatchIterator(_data(), 4)
    assert (it.process_index, it.process_count) == (jax.process_index(), jax.process_count())
    with pytest.raises(ValueError, match="multiple of process_count=3"):
        BatchIterator(_data(), 4, process_index=0, process_count=3)
    with pytest.raises(ValueError, match="same leading length"):
        BatchIterator({"a": np.zeros(3), "b": np.zeros(4)}, 2)
    with pytest.raises(ValueError, match="epoch would be empty"):
        BatchIterator(_data(3), 4)
    with pytest.raises(ValueError, match="process_index must be"):
        BatchIterator(_data(), 4, process_index=2, process_count=2)


def test_split_for_devices():
    batch = {"x": np.zeros((8, 3)), "y": np.arange(8)}
    out = split_for_devices(batch, 4)
    assert out["x"].shape == (4, 2, 3)
    np.testing.assert_array_equal(out["y"][1], [2, 3])
    with pytest.raises(ValueError, match="not divisible by num_devices=3"):
        split_for_devices(batch, 3)


def test_prefetch_preserves_order_and_values():
    it = BatchIterator(_data(), 5, seed=0)
    host = list(it.epoch(0))
    dev = list(prefetch_to_device(it.epoch(0), size=2))
    assert all(isinstance(d["x"], jax.Array) for d in dev)
    for h, d in zip(host, dev, strict=True):
        np.testing.assert_array_equal(h["i"], np.asarray(d["i"]))


def test_prefetch_with_sharding():
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    out = next(prefetch_to_device(iter([{"x": np.ones((4, 2))}]), sharding=sharding))
    assert out["x"].sharding == sharding


def test_prefetch_reraises_source_errors():
    def source():
        yield {"x": np.zeros(2)}
        raise RuntimeError("disk gone")

    stream = prefetch_to_device(source())
    next(stream)
    with pytest.raises(RuntimeError, match="disk gone"):
        next(stream)


def test_prefetch_thread_stops_when_consumer_closes():
    before = {t.ident for t in threading.enumerate()}
    stream = prefetch_to_device(BatchIterator(_data(), 5).from_step(0), size=2)
    next(stream)
    stream.close()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        alive = [t for t in threading.enumerate()
                 if t.name == "jflows-prefetch" and t.ident not in before]
        if not alive:
            break
        time.sleep(0.02)
    assert not alive
    with pytest.raises(ValueError, match="size must be >= 1"):
        prefetch_to_device(iter([]), size=0)
