"""Gradient accumulation: one optimizer update per ``every`` micro-batches."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jaxnet.optim.interop import as_optimizer
from jaxnet.optim.program import program_key, with_program_key
from jaxnet.types import Optimizer


class AccumulateState(NamedTuple):
    """State of :func:`accumulate`.

    Attributes:
      count: micro-batches seen (int32); an update is taken when ``count % every == every - 1``.
      grad_sum: the sum of the gradients since the last update, in at least float32.
      inner: the wrapped optimizer's state (it advances once per ``every`` micro-batches).
    """

    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as optax's states do
    grad_sum: Any
    inner: Any


def _acc_dtype(dtype):
    return jnp.promote_types(dtype, jnp.float32)


def accumulate(optimizer, every: int) -> Optimizer:
    """Accumulate gradients over ``every`` micro-batches, then take one step of ``optimizer`` on their mean.

    ``g = (1/k) sum_j g_j`` over the ``k = every`` micro-batches. For a loss that is a mean
    over samples and micro-batches of equal size, ``g`` is the gradient of the loss on their
    concatenation, so ``k`` steps of this equal one step on a ``k`` times larger batch (to
    float rounding); the ``k - 1`` steps in between return zero updates. Model state that a
    forward pass changes (BatchNorm statistics) still advances at every micro-batch.

    Args:
      optimizer: the optimizer to step (jaxnet or optax).
      every: micro-batches per update, a positive int.

    Raises:
      TypeError: if ``every`` is not a positive int or ``optimizer`` is not an optimizer.
    """
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise TypeError(f"accumulate: every must be a positive int, got {every!r}")
    inner = as_optimizer(optimizer, owner="accumulate: optimizer")

    def init(params):
        zeros = jax.tree_util.tree_map(lambda p: jnp.zeros(jnp.shape(p), _acc_dtype(jnp.result_type(p))), params)
        return AccumulateState(jnp.zeros([], jnp.int32), zeros, inner.init(params))

    def update(grads, state, params=None):
        total = jax.tree_util.tree_map(lambda s, g: s + g.astype(s.dtype), state.grad_sum, grads)
        mean = jax.tree_util.tree_map(lambda s, g: (s / every).astype(g.dtype), total, grads)
        out_shapes = jax.eval_shape(lambda: inner.update(mean, state.inner, params)[0])

        def step(_):
            u, s = inner.update(mean, state.inner, params)
            return u, s, jax.tree_util.tree_map(jnp.zeros_like, total)

        def wait(_):
            zeros = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), out_shapes)
            return zeros, state.inner, total

        updates, new_inner, new_sum = lax.cond(state.count % every == every - 1, step, wait, None)
        return updates, AccumulateState(state.count + 1, new_sum, new_inner)

    key = program_key(inner)
    if key is not None:
        with_program_key(update, "accumulate", every, key)
    return Optimizer(init, update)
