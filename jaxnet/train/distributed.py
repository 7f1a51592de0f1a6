"""Past one process: JAX's distributed runtime, global arrays, and checkpoints written once.

Every process runs the same program. :func:`initialize` starts JAX's distributed runtime
(``jax.distributed.initialize``) from arguments or environment variables, after which
``jax.devices()`` lists the devices of every process and ``data_mesh()`` spans them all. ``fit``
with ``mesh=`` then places params, optimizer state and data on the mesh as global arrays
(:func:`replicate_global`) and each step's batch is split over the ``"data"`` axis: every
process computes the gradient of its devices' shard of the global batch, XLA all-reduces the
gradients, and every process ends with the same params. Each process holds the whole
training set (the batches are cut inside the compiled epoch), which suits data that fits in
one host's memory. :func:`save_checkpoint_once` writes from process 0 only and waits until
the file exists for all processes, which then read it with ``load_checkpoint``.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"
ENV = ("JAXNET_COORDINATOR", "JAXNET_NUM_PROCESSES", "JAXNET_PROCESS_ID")
"""Environment variables :func:`initialize` reads when an argument is not given."""


class ProcessInfo(NamedTuple):
    """Where this process stands: its index, the number of processes and devices (local and global)."""

    process_id: int
    num_processes: int
    local_devices: int
    global_devices: int


def _env_int(name: str):
    v = os.environ.get(name)
    if v is None or v == "":
        return None
    try:
        return int(v)
    except ValueError:
        raise ValueError(f"initialize: the environment variable {name} must be an int, got {v!r}") from None


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    cpu_devices: int | None = None,
    cpu_collectives: str | None = None,
    local_device_ids=None,
) -> ProcessInfo:
    """Start JAX's distributed runtime for this process; call it first, before any other JAX call.

    Args:
      coordinator: ``"HOST:PORT"`` of process 0's coordination service (default: the
        environment variable ``JAXNET_COORDINATOR``; when that is unset too, JAX's own
        cluster detection runs: SLURM, Open MPI, Kubernetes, Cloud TPU).
      num_processes, process_id: default ``JAXNET_NUM_PROCESSES`` and ``JAXNET_PROCESS_ID``.
        With one process and no coordinator nothing is started (a plain single-process run).
      cpu_devices: devices to expose per process on the CPU backend (``jax_num_cpu_devices``).
      cpu_collectives: the CPU collectives across processes, ``"gloo"`` (or ``"mpi"``); GPUs
        and TPUs use their own (NCCL, ICI) and ignore it.
      local_device_ids: the GPUs this process owns (default: all it sees).

    Returns:
      A :class:`ProcessInfo`.

    Raises:
      ValueError: for a process id outside ``[0, num_processes)``, a non-positive process
        count, a coordinator without ``:PORT``, or an environment variable that is not an int.
    """
    coordinator = coordinator or os.environ.get("JAXNET_COORDINATOR") or None
    num_processes = num_processes if num_processes is not None else _env_int("JAXNET_NUM_PROCESSES")
    process_id = process_id if process_id is not None else _env_int("JAXNET_PROCESS_ID")
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"initialize: num_processes must be >= 1, got {num_processes}")
    if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"initialize: process_id must lie in [0, {num_processes}), got {process_id}")
    if coordinator is not None and coordinator.rpartition(":")[2].isdigit() is False:
        raise ValueError(f"initialize: coordinator must be HOST:PORT, got {coordinator!r}")
    single = (num_processes in (None, 1)) and coordinator is None
    try:
        if cpu_devices is not None and not (single and _cpu_devices_already(int(cpu_devices))):
            jax.config.update("jax_num_cpu_devices", int(cpu_devices))
        if cpu_collectives is not None:
            jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    except RuntimeError as e:  # JAX refuses once a computation has run
        raise ValueError(
            f"initialize: call it before any other JAX operation in this process (JAX has already started): {e}"
        ) from None
    if not single:
        jax.distributed.initialize(
            coordinator_address=coordinator,
            num_processes=num_processes,
            process_id=process_id,
            local_device_ids=local_device_ids,
        )
    return process_info()


def _cpu_devices_already(n: int) -> bool:
    # asking again for what a started CPU backend already has is not an error
    try:
        from jax._src import xla_bridge

        started = xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):
        return False
    return started and jax.default_backend() == "cpu" and jax.local_device_count() >= n


def process_info() -> ProcessInfo:
    """This process's :class:`ProcessInfo`."""
    return ProcessInfo(jax.process_index(), jax.process_count(), jax.local_device_count(), jax.device_count())


def is_main_process() -> bool:
    """True in process 0 (the one that writes files and prints)."""
    return jax.process_index() == 0


def check_mesh(where: str, mesh, batch_size: int, axis: str = DATA_AXIS) -> Mesh:
    """Check that ``mesh`` is a ``Mesh`` with ``axis`` whose size divides ``batch_size``; return it.

    Raises:
      TypeError: if ``mesh`` is not a ``jax.sharding.Mesh``.
      ValueError: if it has no ``axis`` or ``batch_size`` is not a multiple of its size.
    """
    if not isinstance(mesh, Mesh):
        raise TypeError(f"{where}: mesh must be a jax.sharding.Mesh such as data_mesh(), got {type(mesh).__name__}")
    if axis not in mesh.shape:
        raise ValueError(f"{where}: the mesh has no axis {axis!r}; its axes: {tuple(mesh.shape)}")
    n = mesh.shape[axis]
    if batch_size % n:
        raise ValueError(f"{where}: batch_size {batch_size} must be a multiple of the mesh's {n} devices")
    return mesh


def replicate_global(tree, mesh: Mesh):
    """Place every leaf of ``tree`` on every device of ``mesh``, as global arrays across processes.

    Every process must pass the same values (same params, same data): each one provides
    its own devices' copies.
    """
    sharding = NamedSharding(mesh, PartitionSpec())

    def place(a):
        if isinstance(a, jax.Array) and a.sharding == sharding:
            return a
        if jax.process_count() == 1:
            return jax.device_put(a, sharding)
        if isinstance(a, jax.Array) and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(place(jax.random.key_data(a)), impl=jax.random.key_impl(a))
        return jax.make_array_from_process_local_data(sharding, np.asarray(a))

    return jax.tree_util.tree_map(place, tree)


def global_batch(local_batch, mesh: Mesh, axis: str = DATA_AXIS):
    """One global batch from each process's local rows (for a step of ``make_parallel_train_step``).

    Process ``i`` passes its ``B / num_processes`` rows; the result is the ``B``-row batch split
    over ``axis``, each process holding the rows it passed.
    """
    sharding = NamedSharding(mesh, PartitionSpec(axis))
    return jax.tree_util.tree_map(
        lambda a: jax.make_array_from_process_local_data(sharding, np.asarray(a)), local_batch
    )


def to_host(tree):
    """Leaves as NumPy arrays; a replicated global array is read from this process's own copy."""

    def get(a):
        if isinstance(a, jax.Array) and not a.is_fully_addressable:
            if not a.is_fully_replicated:
                raise ValueError(
                    f"to_host: an array of shape {a.shape} is split across processes; gather it first "
                    "(jax.experimental.multihost_utils.process_allgather)"
                )
            return np.asarray(a.addressable_data(0))
        return a

    return jax.tree_util.tree_map(get, tree)


def barrier(name: str) -> None:
    """Wait until every process reaches the barrier ``name`` (nothing to wait for with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def save_checkpoint_once(path, **kwargs) -> str:
    """:func:`~jaxnet.train.checkpoint.save_checkpoint` from process 0 only; every process then waits for it.

    Takes the arguments of ``save_checkpoint``; global arrays are read from local copies
    (:func:`to_host`). Returns the path (on every process), after which all processes may
    ``load_checkpoint`` it from a file system they share.
    """
    from jaxnet.train.checkpoint import save_checkpoint

    for name in ("params", "state", "opt_state"):
        if kwargs.get(name) is not None:
            kwargs[name] = to_host(kwargs[name])
    target = os.fspath(path)
    target = target if target.endswith(".npz") else target + ".npz"
    if is_main_process():
        target = save_checkpoint(path, **kwargs)
    barrier(f"jaxnet.save_checkpoint_once:{target}")
    return target
