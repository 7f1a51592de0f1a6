"""Gradient clipping transforms, to put first in a :func:`~jaxnet.optim.chain`."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxnet.optim.checks import check_state
from jaxnet.optim.hyperparams import cast, check_hyperparameter, float_dtype
from jaxnet.optim.program import with_program_key
from jaxnet.types import Array, Optimizer


def global_norm(tree: Any) -> Array:
    """``sqrt(sum of g^2 over every leaf)``."""
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        return jnp.zeros([])
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in leaves))


class ClipByGlobalNormState(NamedTuple):
    """State of :func:`clip_by_global_norm`: the threshold as an array."""

    max_norm: jax.Array


def clip_by_global_norm(max_norm: float | Array) -> Optimizer:
    """Rescale all gradients together so that their global norm is at most ``max_norm``.

    ``g <- g * min(1, max_norm / ||g||)``: the direction is kept. (PyTorch's
    ``clip_grad_norm_`` adds 1e-6 to ``||g||``; this is the exact rule.)

    Raises:
      ValueError: for a negative or non-finite ``max_norm``.
    """
    c = check_hyperparameter("clip_by_global_norm", "max_norm", max_norm)

    def init(params):
        del params
        return ClipByGlobalNormState(jnp.asarray(c, float_dtype()))  # never a schedule

    def update(grads, state, params=None):
        del params
        check_state("clip_by_global_norm", state, ClipByGlobalNormState, grads, trees={})
        norm = global_norm(grads)
        # where, not a division, so that a zero gradient (norm 0) stays exactly zero.
        scale = jnp.where(norm > state.max_norm, state.max_norm / jnp.where(norm > 0, norm, 1.0), 1.0)
        return jax.tree_util.tree_map(lambda g: g * cast(scale, g.dtype), grads), state

    with_program_key(update, "clip_by_global_norm")
    return Optimizer(init, update)


class ClipByValueState(NamedTuple):
    """State of :func:`clip_by_value`: the bound as an array."""

    max_delta: jax.Array


def clip_by_value(max_delta: float | Array) -> Optimizer:
    """Clip every gradient entry to ``[-max_delta, max_delta]`` (PyTorch's ``clip_grad_value_``).

    Raises:
      ValueError: for a negative or non-finite ``max_delta``.
    """
    c = check_hyperparameter("clip_by_value", "max_delta", max_delta)

    def init(params):
        del params
        return ClipByValueState(jnp.asarray(c, float_dtype()))  # never a schedule

    def update(grads, state, params=None):
        del params
        check_state("clip_by_value", state, ClipByValueState, grads, trees={})
        return jax.tree_util.tree_map(
            lambda g: jnp.clip(g, -cast(state.max_delta, g.dtype), cast(state.max_delta, g.dtype)), grads
        ), state

    with_program_key(update, "clip_by_value")
    return Optimizer(init, update)
