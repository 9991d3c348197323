"""Run a per-device step data-parallel: ``jax.jit`` with shardings, ``shard_map`` or ``pmap``.

:func:`data_parallel` wraps a step ``fn(state, batch, *args)`` (e.g. from
:func:`~jflows.train.make_train_step`, whose collectives over
:data:`~jflows.train.step.DATA_AXIS` run only where that axis is bound) into a
:class:`DataParallel` runner that

* keeps ``state`` **replicated** on every device and splits the **global batch** along its
  leading axis, one equal shard per device, over all devices of all processes;
* passes any further ``args`` to every device unchanged;
* returns the outputs replicated (every copy is equal);
* donates the state's buffers (``donate_state=True``) so the updated state reuses them and
  device memory does not double.

The three modes compute the same global-batch quantities:

* ``"jit"`` (the default): ``jax.jit(fn)`` with the batch placed by
  ``NamedSharding(mesh, P(axis))`` and the state by ``NamedSharding(mesh, P())`` over a
  1-D ``Mesh`` of the devices. ``fn`` sees the *global* batch (no named axis is bound, so
  the step's ``pmean``-s are skipped) and XLA's partitioner inserts the reductions: the
  gradient of the global mean loss and batch-norm statistics of the global batch come out
  directly. On one device this is a plain ``jit`` with no collectives. It also
  differentiates through code that ``shard_map`` cannot (diffrax's default
  ``RecursiveCheckpointAdjoint``, diffrax issue #765).
* ``"shard_map"``: ``jax.jit(shard_map(fn, mesh, in_specs=(P(), P(axis)), out_specs=P()))``:
  ``fn`` runs per device on its shard with the axis bound and averages with ``pmean``
  explicitly. Replication is not checked (``check_vma=False``, as ``pmap`` itself does on
  JAX >= 0.8).
* ``"pmap"``: ``jax.pmap(fn, axis_name)``, per-device code as under ``shard_map``; the
  state carries a leading device axis. Kept for compatibility (``pmap`` is in
  maintenance mode upstream).

Per-device and global computations agree for equal shards: the mean of per-device means
is the global mean (tests/train/test_parallel.py compares all three modes on 1 and 8
devices with one device on the global batch). Stochastic losses differ between modes:
per-device code folds the device index into each device's key, the global step draws the
whole batch's noise from one key (the same numbers on any number of devices).

``mode=None`` picks :data:`DEFAULT_MODE` (``"jit"``; the modes' steps/s are in
BENCHMARKS.md, "Training").

**Multi-host.** After :func:`initialize_distributed` (``jax.distributed.initialize``) every
process runs the same program; each passes only *its own* part of the global batch (what
``jflows.data.BatchIterator(process_index=..., process_count=...)`` yields), the runner
assembles the global array (``jax.make_array_from_process_local_data``) and collectives
span all processes' devices. Process ``p``'s rows are the ``p``-th contiguous block of the
global batch, the layout ``BatchIterator`` produces.

**CPU with several devices.** XLA's in-process CPU collectives can deadlock when several
multi-device executions are queued at once (seen with 8 fake devices on 2 cores: "Expected
8 threads to join the rendezvous"), so on CPU with more than one local device each call
waits for its result before returning. Accelerators are not affected.

**Uneven batches.** Every device must get the same number of rows: a local batch whose
size is not a multiple of the local device count raises a ``ValueError``. (``fit`` trims
a smaller last training batch to a multiple and evaluates a smaller last validation batch
on one device; see :mod:`jflows.train.loop`.)
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jflows.data import split_for_devices
from jflows.train.step import DATA_AXIS

MODES = ("jit", "shard_map", "pmap")
DEFAULT_MODE = "jit"
"""The mode ``data_parallel(mode=None)`` uses: global-batch ``jit`` with shardings."""


def _shard_map(fn, *, mesh, in_specs, out_specs):
    """``shard_map`` without replication checks, on new (``jax.shard_map``, ``check_vma``)
    and old (``jax.experimental.shard_map``, ``check_rep``) JAX."""
    shard_map = getattr(jax, "shard_map", None)
    if shard_map is None:
        from jax.experimental.shard_map import shard_map
    unchecked = ({"check_vma": False} if "check_vma" in inspect.signature(shard_map).parameters
                 else {"check_rep": False})
    return shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, **unchecked)


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None, **kwargs) -> None:
    """Join a multi-process run: ``jax.distributed.initialize`` with the same arguments.

    Call it first in every process, before any other JAX call. On TPU pods and SLURM /
    Open MPI clusters all arguments are detected and can be omitted; elsewhere give the
    coordinator's ``"host:port"``, the number of processes and this process's index.
    CPU processes talk through gloo (JAX's default CPU collectives).
    """
    jax.distributed.initialize(coordinator_address, num_processes, process_id, **kwargs)


class DataParallel:
    """A per-device function run data-parallel; build it with :func:`data_parallel`.

    Attributes:
      mode: ``"jit"``, ``"shard_map"`` or ``"pmap"``.
      devices: every participating device, over all processes.
      local_devices: this process's devices among them.
      batch_sharding: where :meth:`prepare`-d host batches go (for
        ``jflows.data.prefetch_to_device``).
    """

    def __init__(self, fn: Callable, mode: str, devices: Sequence, axis_name, donate_state: bool):
        self.fn = fn
        self.mode = mode
        self.axis_name = axis_name
        self.donate_state = donate_state
        self.devices = list(devices)
        me = jax.process_index()
        self.local_devices = [d for d in self.devices if d.process_index == me]
        if not self.local_devices:
            raise ValueError("data_parallel: none of the given devices belongs to this process.")
        self.multi_process = len(self.local_devices) != len(self.devices)
        if mode == "pmap":
            # pmap takes and returns each process's part: a leading axis of local devices.
            mesh = Mesh(np.array(self.local_devices), (axis_name,))
            self.batch_sharding = NamedSharding(mesh, P(axis_name))
            self._replicated = self.batch_sharding
        else:
            mesh = Mesh(np.array(self.devices), (axis_name,))
            self.batch_sharding = NamedSharding(mesh, P(axis_name))
            self._replicated = NamedSharding(mesh, P())
        self.mesh = mesh
        self._wait = self.local_devices[0].platform == "cpu" and len(self.local_devices) > 1
        self._compiled: dict[int, Callable] = {}

    @property
    def num_devices(self) -> int:
        return len(self.devices)

    @property
    def num_local_devices(self) -> int:
        return len(self.local_devices)

    def _build(self, num_args: int) -> Callable:
        donate = (0,) if self.donate_state else ()
        if self.mode == "pmap":
            return jax.pmap(self.fn, self.axis_name, in_axes=(0, 0) + (None,) * num_args,
                            devices=self.devices, donate_argnums=donate)
        if self.mode == "jit":
            return jax.jit(self.fn, donate_argnums=donate,
                           in_shardings=(self._replicated, self.batch_sharding)
                           + (self._replicated,) * num_args,
                           out_shardings=self._replicated)
        mapped = _shard_map(self.fn, mesh=self.mesh,
                            in_specs=(P(), P(self.axis_name)) + (P(),) * num_args,
                            out_specs=P())
        return jax.jit(mapped, donate_argnums=donate)

    def __call__(self, state, batch, *args):
        """Run on every device: ``state`` from :meth:`replicate` (or a previous call);
        ``batch`` this process's host batch, or its :meth:`shard`-ed form; outputs replicated.

        In a single process a host batch goes straight to the compiled step, whose own
        transfer is the cheapest (a separate ``device_put`` cost ~200 us per step on CPU).
        """
        if not all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(batch)):
            batch = self.shard(batch) if self.multi_process else self.prepare(batch)
        call = self._compiled.get(len(args))
        if call is None:
            call = self._compiled[len(args)] = self._build(len(args))
        out = call(state, batch, *args)
        return jax.block_until_ready(out) if self._wait else out

    def replicate(self, tree):
        """Put a host pytree (e.g. a :class:`~jflows.train.TrainState`) on every device."""
        if self.mode == "pmap":
            n = self.num_local_devices
            return jax.tree.map(
                lambda x: jax.device_put(np.broadcast_to(x, (n, *np.shape(x))), self._replicated),
                tree)
        return jax.tree.map(
            lambda x: jax.make_array_from_process_local_data(self._replicated, np.asarray(x)),
            tree)

    def unreplicate(self, tree):
        """One host (NumPy) copy of a replicated pytree: the inverse of :meth:`replicate`."""
        def first(x):
            local = np.asarray(x.addressable_data(0))
            return local[0] if self.mode == "pmap" else local

        return jax.tree.map(first, tree)

    def global_batch_size(self, batch) -> int:
        """Rows of the global batch that ``batch`` (a host batch or a :meth:`shard`-ed one)
        is part of."""
        leaf = jax.tree.leaves(batch)[0]
        processes = self.num_devices // self.num_local_devices
        if not isinstance(leaf, jax.Array):
            return leaf.shape[0] * processes
        if self.mode == "pmap":
            return leaf.shape[0] * leaf.shape[1] * processes
        return leaf.shape[0]

    def prepare(self, batch):
        """Host-side layout of this process's batch for :attr:`batch_sharding`."""
        leaves = jax.tree.leaves(batch)
        if not leaves:
            raise ValueError("data_parallel: the batch has no arrays.")
        rows = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in leaves}
        n = self.num_local_devices
        if len(rows) != 1 or None in rows or next(iter(rows)) % n:
            raise ValueError(
                "data_parallel: every array of a batch needs the same leading (batch) size, a "
                f"multiple of the {n} local devices; got shapes "
                f"{[np.shape(leaf) for leaf in leaves]}."
            )
        if self.mode == "pmap":
            return split_for_devices(batch, n)
        return batch

    def shard(self, batch):
        """Place this process's part of the global batch, split evenly over the devices."""
        batch = self.prepare(batch)
        if self.multi_process:
            return jax.tree.map(
                lambda x: jax.make_array_from_process_local_data(self.batch_sharding,
                                                                 np.asarray(x)), batch)
        return jax.device_put(batch, self.batch_sharding)


def data_parallel(fn: Callable, mode: str | None = None, devices: Sequence | None = None, *,
                  axis_name=DATA_AXIS, donate_state: bool = True) -> DataParallel:
    """Run the per-device ``fn(state, batch, *args)`` over ``devices`` (default: all).

    Args:
      fn: the step; under ``"shard_map"`` / ``"pmap"`` it runs per device with
        ``axis_name`` bound, under ``"jit"`` on the global batch with no axis bound.
      mode: ``"jit"``, ``"shard_map"``, ``"pmap"`` or None (:data:`DEFAULT_MODE`).
      devices: the devices of every process to run on; default ``jax.devices()``.
      axis_name: the name ``fn``'s collectives use.
      donate_state: donate the state argument's buffers (for train steps; turn off for
        eval steps, whose state is used again).
    """
    mode = DEFAULT_MODE if mode is None else mode
    if mode not in MODES:
        raise ValueError(f"data_parallel: mode must be one of {MODES} or None, got {mode!r}.")
    devices = tuple(jax.devices() if devices is None else devices)
    return _cached_runner(fn, mode, devices, axis_name, donate_state)


@functools.lru_cache(maxsize=64)
def _cached_runner(fn, mode, devices, axis_name, donate_state) -> DataParallel:
    """One runner (and its compiled code) per function and placement: calling ``fit`` again
    with the same step does not compile again."""
    return DataParallel(fn, mode, devices, axis_name, donate_state)


@functools.lru_cache(maxsize=64)
def on_one_device(fn: Callable, *, axis_name=DATA_AXIS) -> Callable:
    """``fn(state, batch, *args)`` on this process's default device, for a batch of any size.

    The per-device function runs under ``jax.vmap`` over a named axis of size one, so its
    collectives are identities; ``state`` is a host (unreplicated) copy. ``fit`` uses it for
    the smaller last batch of an evaluation pass, which cannot be split evenly.
    """
    def single(state, batch, *args):
        in_axes = (None, 0) + (None,) * len(args)
        batch = jax.tree.map(lambda x: x[None], batch)
        out = jax.vmap(fn, in_axes=in_axes, axis_name=axis_name)(state, batch, *args)
        return jax.tree.map(lambda x: x[0], out)

    return jax.jit(single)
