"""Deterministic, resumable batches for single- and multi-process data-parallel training.

:class:`BatchIterator` cuts a pytree of NumPy arrays (same leading length ``N``) into
global batches of ``batch_size`` rows. The order of epoch ``e`` is
``np.random.default_rng([seed, e]).permutation(N)`` (or ``arange(N)`` without shuffling):
a function of ``(seed, e)`` only, so any step can be recomputed without replaying the
ones before it, and every process computes the same global batches without talking to
the others. Process ``p`` of ``P`` takes the contiguous slice
``[p * B / P, (p + 1) * B / P)`` of every global batch ``B``; the training layer splits
it further over local devices with :func:`split_for_devices` and puts it on devices with
:func:`prefetch_to_device`.

Global step ``k`` is batch ``k % steps_per_epoch`` of epoch ``k // steps_per_epoch``, so
``from_step(k)`` after a restart yields exactly what an uninterrupted run saw from step
``k`` on.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import jax
import numpy as np


class BatchIterator:
    """Global batches of a pytree of arrays; see the module docstring.

    Args:
      data: pytree (dict, tuple, ...) of arrays with the same leading length ``N``.
      batch_size: the global batch size, over all processes; divisible by ``process_count``.
      seed: seed of the per-epoch shuffles.
      shuffle: shuffle each epoch (else the rows' order every epoch).
      drop_remainder: drop the last ``N % batch_size`` rows of each epoch (every batch then
        has ``batch_size`` rows); otherwise the last batch of an epoch is smaller and is
        split into contiguous per-process slices that may differ in size by one row.
      process_index, process_count: this process and how many there are; default
        ``jax.process_index()`` and ``jax.process_count()``.
    """

    def __init__(self, data, batch_size: int, *, seed: int = 0, shuffle: bool = True,
                 drop_remainder: bool = True, process_index: int | None = None,
                 process_count: int | None = None):
        leaves, self._treedef = jax.tree_util.tree_flatten(data)
        if not leaves:
            raise ValueError("BatchIterator: data has no arrays.")
        leaves = [np.asarray(a) for a in leaves]
        lengths = {a.shape[0] if a.ndim else None for a in leaves}
        if len(lengths) != 1 or None in lengths:
            raise ValueError("BatchIterator: every array needs the same leading length, got "
                             f"shapes {[a.shape for a in leaves]}.")
        self._leaves = leaves
        self.num_examples = lengths.pop()
        if process_count is None:
            process_count = jax.process_count()
        if process_index is None:
            process_index = jax.process_index()
        if not 0 <= process_index < process_count:
            raise ValueError(f"process_index must be in [0, {process_count}), "
                             f"got {process_index}.")
        if batch_size < 1 or batch_size % process_count:
            raise ValueError(f"batch_size (global) must be a positive multiple of "
                             f"process_count={process_count}, got {batch_size}.")
        if drop_remainder and batch_size > self.num_examples:
            raise ValueError(f"batch_size {batch_size} exceeds the {self.num_examples} "
                             "examples: with drop_remainder=True an epoch would be empty.")
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.drop_remainder = drop_remainder
        self.process_index = process_index
        self.process_count = process_count

    @property
    def steps_per_epoch(self) -> int:
        n, b = self.num_examples, self.batch_size
        return n // b if self.drop_remainder else -(-n // b)

    def __len__(self) -> int:
        return self.steps_per_epoch

    def order(self, epoch: int) -> np.ndarray:
        """Row order of ``epoch``: a function of ``(seed, epoch)`` only."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}.")
        if not self.shuffle:
            return np.arange(self.num_examples)
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)

    def global_indices(self, step: int) -> np.ndarray:
        """Row indices of the whole global batch at global ``step`` (all processes)."""
        epoch, i = divmod(step, self.steps_per_epoch)
        return self._slice(self.order(epoch), i)

    def _slice(self, order: np.ndarray, i: int) -> np.ndarray:
        return order[i * self.batch_size:(i + 1) * self.batch_size]

    def _local(self, indices: np.ndarray) -> np.ndarray:
        n, p, count = len(indices), self.process_index, self.process_count
        return indices[p * n // count:(p + 1) * n // count]

    def _gather(self, indices: np.ndarray):
        return jax.tree_util.tree_unflatten(self._treedef, [a[indices] for a in self._leaves])

    def epoch(self, e: int, start: int = 0) -> Iterator:
        """This process's share of each global batch of epoch ``e``, from batch ``start``."""
        order = self.order(e)
        for i in range(start, self.steps_per_epoch):
            yield self._gather(self._local(self._slice(order, i)))

    def from_step(self, step: int) -> Iterator:
        """Endless stream from global ``step`` on, epochs chained; the same batches an
        uninterrupted run sees from that step."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}.")
        e, i = divmod(step, self.steps_per_epoch)
        while True:
            yield from self.epoch(e, start=i)
            e, i = e + 1, 0


def split_for_devices(batch, num_devices: int):
    """Reshape every leaf's leading axis ``B`` to ``(num_devices, B // num_devices)``."""

    def split(a):
        if a.ndim == 0 or a.shape[0] % num_devices:
            raise ValueError(f"split_for_devices: leading axis of shape {a.shape} is not "
                             f"divisible by num_devices={num_devices}.")
        return a.reshape(num_devices, a.shape[0] // num_devices, *a.shape[1:])

    if num_devices < 1:
        raise ValueError(f"num_devices must be >= 1, got {num_devices}.")
    return jax.tree_util.tree_map(split, batch)


_END = object()


def prefetch_to_device(iterator, size: int = 2, sharding=None) -> Iterator:
    """Put batches on devices ahead of use, from a background thread.

    Up to ``size`` batches are produced (gathered from the host iterator and transferred)
    while the caller works on the current one. With ``sharding=None`` each leaf goes to
    the default device (``jax.device_put``); with a ``jax.sharding.Sharding`` of the
    *global* batch each process's local batch becomes its part of one global array
    (``jax.make_array_from_process_local_data``; in a single process that is
    ``device_put`` with the sharding). Errors of the source iterator are re-raised in the
    caller; closing the returned generator stops the thread.
    """
    if size < 1:
        raise ValueError(f"prefetch size must be >= 1, got {size}.")
    return _prefetch(iter(iterator), size, sharding)


def _prefetch(iterator, size: int, sharding) -> Iterator:
    if sharding is None:
        put = jax.device_put
    else:
        put = lambda b: jax.tree_util.tree_map(
            lambda a: jax.make_array_from_process_local_data(sharding, np.asarray(a)), b)
    buffer: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def offer(item) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for batch in iterator:
                if not offer((put(batch), None)):
                    return
            offer((_END, None))
        except BaseException as err:  # handed to the consumer, not lost in the thread
            offer((None, err))

    thread = threading.Thread(target=produce, name="jflows-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, err = buffer.get()
            if err is not None:
                raise err
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=5.0)
