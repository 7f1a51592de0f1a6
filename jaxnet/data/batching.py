"""Shuffled mini-batches laid out for ``lax.scan`` (§4.3.4).

An epoch visits the ``n`` samples once in a fresh random order and cuts them into batches of
``batch_size`` samples. The last, partial batch follows one of two stated policies:

* ``drop_last=True`` (the default): ``steps = n // batch_size``; the ``n % batch_size``
  samples left over are skipped this epoch (a different few each epoch, since the order is
  reshuffled). Every batch is full and the mask is all ``True``.
* ``drop_last=False``: ``steps = ceil(n / batch_size)``; the last batch is padded with index 0
  and the mask is ``False`` on the padding, so a loss that weights samples by the mask
  (``loss(outputs, targets, where=mask)``) ignores it. Every sample is used exactly once.

Nothing loops over samples in Python: one ``jax.random.permutation`` and one gather per array.
``n`` and ``batch_size`` are static Python ints (they fix the shapes).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def num_steps(n: int, batch_size: int, *, drop_last: bool = True) -> int:
    """Batches per epoch: ``n // batch_size`` with ``drop_last``, else ``ceil(n / batch_size)``.

    Raises:
      TypeError: when ``n`` or ``batch_size`` is not a Python int.
      ValueError: for ``batch_size <= 0``, ``n <= 0``, or ``batch_size > n`` with ``drop_last``.
    """
    for name, v in (("n", n), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"shuffle_batches: {name} must be a static Python int, got {v!r}")
    if batch_size <= 0:
        raise ValueError(f"shuffle_batches: batch_size must be > 0, got batch_size={batch_size} (n={n})")
    if n <= 0:
        raise ValueError(f"shuffle_batches: n must be > 0, got n={n}")
    if drop_last and batch_size > n:
        raise ValueError(
            f"shuffle_batches: batch_size={batch_size} is larger than the data (n={n}) with drop_last=True, "
            "which would leave no batch; lower batch_size or pass drop_last=False"
        )
    return n // batch_size if drop_last else -(-n // batch_size)


def shuffle_batches(key, n: int, batch_size: int, *, drop_last: bool = True):
    """One shuffled epoch as index batches.

    Args:
      key: a ``jax.random`` key; a fresh permutation of ``range(n)`` per key.
      n: number of samples (static).
      batch_size: samples per batch (static).
      drop_last: the policy for the last partial batch (see the module docstring).

    Returns:
      ``(idx, mask)``: ``idx`` int32 [steps, batch_size] and ``mask`` bool [steps, batch_size].

    Raises:
      ValueError: for ``batch_size <= 0`` or ``batch_size > n`` with ``drop_last=True``.
    """
    steps = num_steps(n, batch_size, drop_last=drop_last)
    perm = jax.random.permutation(key, n).astype(jnp.int32)
    total = steps * batch_size
    if total <= n:
        return perm[:total].reshape(steps, batch_size), jnp.ones((steps, batch_size), dtype=bool)
    pad = jnp.zeros((total - n,), dtype=jnp.int32)  # index 0 is always valid
    idx = jnp.concatenate([perm, pad]).reshape(steps, batch_size)
    mask = (jnp.arange(total) < n).reshape(steps, batch_size)
    return idx, mask


def epoch_batches(key, arrays, batch_size: int, *, drop_last: bool = True):
    """Gather a pytree of arrays (e.g. ``(x, y)``) into shuffled batches ``[steps, batch_size, ...]``.

    All arrays share the leading sample axis and the same shuffle, so pairs stay aligned.

    Example::

        (xb, yb), mask = epoch_batches(key, (x, y), 32)
        def body(carry, batch):
            (xi, yi), mi = batch
            ...
        lax.scan(body, carry, ((xb, yb), mask))

    Args:
      key: a ``jax.random`` key.
      arrays: a pytree (tuple, dict, single array) of arrays with equal leading size ``n``.
      batch_size: samples per batch (static).
      drop_last: the policy for the last partial batch (see the module docstring).

    Returns:
      ``(batched, mask)``: ``batched`` has the structure of ``arrays`` with leaves
      [steps, batch_size, ...]; ``mask`` is bool [steps, batch_size].

    Raises:
      ValueError: for no arrays, arrays of different leading sizes, or a bad ``batch_size``.
    """
    leaves = jax.tree_util.tree_leaves(arrays)
    if not leaves:
        raise ValueError("epoch_batches: arrays holds no array")
    sizes = {int(jnp.shape(a)[0]) if jnp.ndim(a) else None for a in leaves}
    if None in sizes or len(sizes) != 1:
        shapes = [jnp.shape(a) for a in leaves]
        raise ValueError(f"epoch_batches: all arrays need the same leading (sample) size, got shapes {shapes}")
    (n,) = sizes
    idx, mask = shuffle_batches(key, n, batch_size, drop_last=drop_last)
    batched = jax.tree_util.tree_map(lambda a: jnp.asarray(a)[idx], arrays)
    return batched, mask
