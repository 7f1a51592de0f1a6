"""Stochastic gradient descent (the walking skeleton; momentum and Nesterov come with the optimizer issue)."""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxnet.types import Optimizer


class SgdState(NamedTuple):
    """State of plain SGD: the step count and the learning rate as an array."""

    count: jax.Array
    learning_rate: jax.Array


def sgd(learning_rate: float = 0.01) -> Optimizer:
    """Plain gradient descent: ``w <- w - lr * g``.

    The learning rate lives in the optimizer state as an array, so changing it
    between calls of a compiled step does not recompile.

    Raises:
      ValueError: if ``learning_rate`` is negative or not finite.
    """
    lr = float(learning_rate)
    if not math.isfinite(lr) or lr < 0:
        raise ValueError(f"sgd: learning_rate must be a finite number >= 0, got {learning_rate!r}")

    def init(params):
        del params
        return SgdState(count=jnp.zeros([], jnp.int32), learning_rate=jnp.asarray(lr, jnp.float32))

    def update(grads, state, params=None):
        del params
        updates = jax.tree_util.tree_map(lambda g: (-state.learning_rate * g).astype(g.dtype), grads)
        return updates, SgdState(state.count + 1, state.learning_rate)

    return Optimizer(init, update)
