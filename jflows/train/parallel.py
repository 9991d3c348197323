"""Run a per-device step data-parallel: ``jax.pmap`` or ``shard_map`` over a ``Mesh``.

:func:`data_parallel` wraps a per-device function ``fn(state, batch, *args)`` (written with
collectives over :data:`~jflows.train.step.DATA_AXIS`, e.g. from
:func:`~jflows.train.make_train_step`) into a :class:`DataParallel` runner that

* keeps ``state`` **replicated** on every device and splits the **global batch** along its
  leading axis, one equal shard per device, over all devices of all processes;
* passes any further ``args`` to every device unchanged;
* returns the outputs replicated (they are ``pmean``-ed inside, so every copy is equal);
* donates the state's buffers (``donate_state=True``) so the updated state reuses them and
  device memory does not double.

The two modes run the *same* per-device code with the same semantics:

* ``"pmap"``: ``jax.pmap(fn, axis_name)``; the state carries a leading device axis.
* ``"shard_map"``: ``jax.jit(shard_map(fn, mesh, in_specs=(P(), P(axis)), out_specs=P()))``
  over a 1-D ``Mesh`` of the devices; the state is one replicated global array per leaf.
  Replication is not checked (``check_vma=False``, as ``pmap`` itself does on JAX >= 0.8),
  so gradients of replicated params are per-device values that the step averages with
  ``pmean`` explicitly, exactly as under ``pmap``.

``mode=None`` picks :data:`DEFAULT_MODE`, the faster of the two measured on this JAX
(BENCHMARKS.md, "Training": on JAX 0.10.2, ``pmap`` is itself implemented as ``jit`` of
``shard_map`` plus per-call Python work, and ``shard_map`` was faster at 1 and 8 devices).

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

import inspect
from collections.abc import Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jflows.data import split_for_devices
from jflows.train.step import DATA_AXIS

MODES = ("pmap", "shard_map")
DEFAULT_MODE = "shard_map"
"""The mode ``data_parallel(mode=None)`` uses: the faster one measured on this JAX."""


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
      mode: ``"pmap"`` or ``"shard_map"``.
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
        mapped = _shard_map(self.fn, mesh=self.mesh,
                            in_specs=(P(), P(self.axis_name)) + (P(),) * num_args,
                            out_specs=P())
        return jax.jit(mapped, donate_argnums=donate)

    def __call__(self, state, batch, *args):
        """Run on every device: ``state`` from :meth:`replicate` (or a previous call),
        ``batch`` from :meth:`shard` (or a host batch, placed here); outputs replicated."""
        if not all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(batch)):
            batch = self.shard(batch)
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
        """Rows of the global batch that a :meth:`shard`-ed ``batch`` is part of."""
        shape = jax.tree.leaves(batch)[0].shape
        if self.mode == "pmap":
            return shape[0] * shape[1] * (self.num_devices // self.num_local_devices)
        return shape[0]

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
      fn: per-device function with collectives over ``axis_name``.
      mode: ``"pmap"``, ``"shard_map"`` or None (:data:`DEFAULT_MODE`).
      devices: the devices of every process to run on; default ``jax.devices()``.
      axis_name: the name ``fn``'s collectives use.
      donate_state: donate the state argument's buffers (for train steps; turn off for
        eval steps, whose state is used again).
    """
    mode = DEFAULT_MODE if mode is None else mode
    if mode not in MODES:
        raise ValueError(f"data_parallel: mode must be one of {MODES} or None, got {mode!r}.")
    devices = jax.devices() if devices is None else devices
    return DataParallel(fn, mode, devices, axis_name, donate_state)


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
