"""Data-parallel training over a ``jax.sharding.Mesh`` of devices.

The mesh has one axis (``"data"``): each batch is split along its first axis across
the devices, while params, model state and optimizer state are replicated. The step
is the ordinary one; ``jax.jit`` with these shardings partitions it, and because the
loss is a mean over the whole (global) batch, XLA inserts the all-reduce of the
gradients. The result equals the single-device step up to float summation order.

Multi-host: start every process with ``jax.distributed.initialize(coordinator_address,
num_processes, process_id)`` (on managed clusters the arguments are found automatically)
before any other jax call. ``jax.devices()`` then lists the devices of all hosts, so
``data_mesh()`` spans them; each process loads its own slice of the global batch and
assembles it with ``jax.make_array_from_process_local_data(batch_sharding(mesh), local)``
before calling the step. Params stay replicated, so every host holds the same model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, cast

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxnet.train.step import donating, train_step_fn
from jaxnet.types import Array, Layer, Optimizer, Params

DATA_AXIS = "data"


def data_mesh(devices: Sequence[jax.Device] | None = None, axis: str = DATA_AXIS) -> Mesh:
    """A one-axis mesh over ``devices`` (default: all devices ``jax.devices()`` sees)."""
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("data_mesh: no devices given")
    return Mesh(np.asarray(devices), (axis,))


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh, axis: str = DATA_AXIS) -> NamedSharding:
    """The first (batch) axis is split across the mesh's ``axis``."""
    return NamedSharding(mesh, PartitionSpec(axis))


def _check_batch(batch, mesh, axis):
    n = mesh.shape[axis]
    for a in jax.tree_util.tree_leaves(batch):
        if a.ndim == 0 or a.shape[0] % n:
            raise ValueError(
                f"data parallel: the batch size must be divisible by the {n} devices of the mesh, "
                f"got an array of shape {tuple(a.shape)}"
            )


def shard_batch(batch: Any, mesh: Mesh, axis: str = DATA_AXIS) -> Any:
    """Place a batch (pytree of arrays) on the mesh, split along the first axis."""
    _check_batch(batch, mesh, axis)
    return jax.device_put(batch, batch_sharding(mesh, axis))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Place a pytree (params, state, optimizer state) on every device of the mesh."""
    return jax.device_put(tree, replicated(mesh))


class ParallelStep(Protocol):
    """What :func:`make_parallel_train_step` returns: the step, with the ``mesh`` it runs on as an attribute."""

    mesh: Mesh

    def __call__(self, params: Any, state: Any, opt_state: Any, batch: Any, key: jax.Array) -> Any: ...


def make_parallel_train_step(
    model: Layer,
    loss: str | Callable[..., Array],
    optimizer: Optimizer,
    *,
    mesh: Mesh | None = None,
    axis: str = DATA_AXIS,
    penalty: Callable[[Params], Array] | None = None,
    augment: Callable[[Array, Array], Array] | None = None,
    metrics: Mapping[str, Callable[..., Array]] | None = None,
    donate: bool = True,
) -> ParallelStep:
    """The training step of :func:`~jaxnet.train.step.make_train_step`, data-parallel over ``mesh``.

    ``step(params, state, opt_state, batch, key)``: ``batch`` is split along its first axis
    (its size must be divisible by the number of devices); everything else is replicated,
    and so are the results.
    """
    mesh = data_mesh(axis=axis) if mesh is None else mesh
    if axis not in mesh.shape:
        raise ValueError(f"make_parallel_train_step: the mesh has no axis {axis!r}; its axes: {tuple(mesh.shape)}")
    step = train_step_fn(model, loss, optimizer, penalty=penalty, augment=augment, metrics=metrics)
    rep, shard = replicated(mesh), batch_sharding(mesh, axis)
    compiled = jax.jit(
        step, in_shardings=(rep, rep, rep, shard, rep), out_shardings=rep, donate_argnums=(0, 1, 2) if donate else ()
    )
    if donate:  # shared inputs run; consumed inputs give jaxnet's error (see make_train_step)
        compiled = donating(compiled, "parallel train step")

    def parallel_step(params, state, opt_state, batch, key):
        _check_batch(batch, mesh, axis)
        return compiled(params, state, opt_state, batch, key)

    out = cast(ParallelStep, parallel_step)
    out.mesh = mesh
    return out
