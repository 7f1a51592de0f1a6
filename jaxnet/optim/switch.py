"""Hand training over from one optimizer to another (the chapter's "start with Adam, finish with SGD")."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jaxnet.optim.checks import check_state
from jaxnet.optim.hyperparams import set_hyperparameter
from jaxnet.optim.interop import as_optimizer
from jaxnet.optim.program import inner_key, static_key, with_program_key
from jaxnet.types import Array, Optimizer, OptState


class SwitchState(NamedTuple):
    """State of :func:`switch`: both optimizers' states in one pytree.

    Attributes:
      count: updates taken in total.
      switched: bool array, True once ``second`` has taken over (it never switches back).
      first, second: the two states; each advances only while its optimizer is active, so
        ``second`` starts from its fresh ``init`` state (e.g. an empty momentum buffer).
    """

    count: jax.Array  # type: ignore[assignment]  # a field named like tuple.count (as in optax): the field wins
    switched: jax.Array
    first: Any
    second: Any


def switch(first: Optimizer, second: Optimizer, at: int | Array) -> Optimizer:
    """Use ``first`` until the hand-over, then ``second`` for good.

    Args:
      first, second: the optimizers, e.g. ``adam(1e-3)`` and ``sgd(0.01, momentum=0.9)``.
      at: a step ``k >= 0`` (``second`` takes updates ``k, k+1, ...``, counting from 0), or a
        predicate ``at(state) -> bool scalar`` on the :class:`SwitchState` before the update
        (e.g. ``lambda s: s.first.count >= 100``). To switch on a criterion computed outside
        the step, such as a validation loss that stops improving, call
        :func:`trigger_switch` on the state between steps: that does not recompile.

    Both updates are traced; ``lax.cond`` runs only the active one (under ``jax.vmap`` with a
    batched condition both run and the results are selected).

    Raises:
      TypeError: if ``first``/``second`` are not optimizers or ``at`` is neither an int nor callable.
      ValueError: if ``at`` is a negative step, or the predicate does not return a scalar.
    """
    first, second = as_optimizer(first, owner="switch: first"), as_optimizer(second, owner="switch: second")
    if callable(at):
        predicate = at
    elif isinstance(at, bool) or not hasattr(at, "__index__"):
        raise TypeError(f"switch: at must be an int step or a predicate state -> bool, got {at!r}")
    else:
        step = int(at)
        if step < 0:
            raise ValueError(f"switch: at must be a step >= 0, got {at!r}")
        predicate = None

    def init(params):
        return SwitchState(jnp.zeros([], jnp.int32), jnp.zeros([], bool), first.init(params), second.init(params))

    def update(grads, state, params=None):
        check_state("switch", state, SwitchState, grads, trees={})
        if predicate is None:
            hand_over = state.count >= step
        else:
            hand_over = jnp.asarray(predicate(state))
            if hand_over.shape != ():
                raise ValueError(f"switch: the predicate at must return a scalar bool, got shape {hand_over.shape}")
            hand_over = hand_over.astype(bool)
        now = state.switched | hand_over

        def run_first(_):
            updates, s = first.update(grads, state.first, params)
            return updates, s, state.second

        def run_second(_):
            updates, s = second.update(grads, state.second, params)
            return updates, state.first, s

        updates, s1, s2 = lax.cond(now, run_second, run_first, None)
        return updates, SwitchState(state.count + 1, now, s1, s2)

    key = inner_key(first, second)
    if key is not None:
        with_program_key(update, "switch", key, step if predicate is None else static_key(predicate))
    return Optimizer(init, update)


def trigger_switch(opt_state: OptState) -> OptState:
    """Return ``opt_state`` with every :func:`switch` in it handed over to its second optimizer."""
    return set_hyperparameter(opt_state, "switched", True)
