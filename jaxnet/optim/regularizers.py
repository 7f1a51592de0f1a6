"""L2 and L1 penalties to add to a loss (§4.4.2), and weight decay as an optimizer transform.

``l2_penalty = (lam/2) sum w^2`` has gradient ``lam w``; with SGD that is the chapter's
``w <- (1 - lr lam) w - lr g``, which :func:`add_decayed_weights` followed by :func:`~jaxnet.optim.sgd`
computes without touching the loss. ``l1_penalty = lam sum |w|`` has the subgradient
``lam sign(w)`` with ``sign(0) = 0`` (``jax.grad(jnp.abs)(0.)`` alone would give 1).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxnet.optim.checks import check_state
from jaxnet.optim.hyperparams import Schedule, cast, check_hyperparameter, current, init_value
from jaxnet.optim.masks import resolve_mask
from jaxnet.optim.program import schedule_key, static_key, with_program_key
from jaxnet.types import Array, Optimizer, Params


@jax.custom_jvp
def abs_sign0(x: Array) -> Array:
    """``|x|`` whose derivative is ``sign(x)``, 0 at 0 (the subgradient the chapter's L1 update uses)."""
    return jnp.abs(x)


@abs_sign0.defjvp
def _abs_sign0_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return jnp.abs(x), jnp.sign(x) * dx


def _masked_sum(owner, params, mask, fn):
    full = resolve_mask(params, mask, owner=owner)
    terms = [
        jnp.sum(fn(p))
        for p, m in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(full), strict=True)
        if m
    ]
    return sum(terms) if terms else jnp.zeros([])


def l2_penalty(params: Params, lam: float | Array, mask: Any = None) -> Array:
    """``(lam / 2) * sum(w^2)`` over the leaves ``mask`` selects (all leaves if ``mask`` is None).

    Raises:
      ValueError: for a negative or non-finite ``lam``, or a mask not matching the params.
    """
    lam = check_hyperparameter("l2_penalty", "lam", lam)
    return 0.5 * lam * _masked_sum("l2_penalty", params, mask, lambda w: w * w)


def l1_penalty(params: Params, lam: float | Array, mask: Any = None) -> Array:
    """``lam * sum(|w|)`` over the masked leaves; its gradient is ``lam sign(w)`` with ``sign(0) = 0``.

    Raises:
      ValueError: for a negative or non-finite ``lam``, or a mask not matching the params.
    """
    lam = check_hyperparameter("l1_penalty", "lam", lam)
    return lam * _masked_sum("l1_penalty", params, mask, abs_sign0)


class AddDecayedWeightsState(NamedTuple):
    """State of :func:`add_decayed_weights`: the step count and ``weight_decay`` (``None`` if scheduled)."""

    count: jax.Array  # type: ignore[assignment]  # a field named like tuple.count (as in optax): the field wins
    weight_decay: Any


def add_decayed_weights(weight_decay: float | Array | Schedule, mask: Any = None) -> Optimizer:
    """Add ``weight_decay * w`` to the incoming gradients on the masked leaves: the gradient of :func:`l2_penalty`.

    ``chain(add_decayed_weights(lam), sgd(lr))`` is ``w <- (1 - lr lam) w - lr g`` and equals
    PyTorch's ``weight_decay=lam`` argument of SGD, Adagrad, RMSprop and Adam (coupled decay);
    for AdamW's decoupled decay use :func:`~jaxnet.optim.adamw`.

    Args:
      weight_decay: ``lam >= 0``, a float or a schedule.
      mask: which leaves decay (see :mod:`jaxnet.optim.masks`); e.g. :func:`~jaxnet.optim.weights_only`.

    Raises:
      ValueError: for a negative or non-finite ``weight_decay``; at ``init``/``update`` for a mask
        not matching the params, or ``update`` without params.
    """
    wd = check_hyperparameter("add_decayed_weights", "weight_decay", weight_decay, allow_schedule=True)

    def init(params):
        resolve_mask(params, mask, owner="add_decayed_weights")  # fail early on a wrong mask
        return AddDecayedWeightsState(jnp.zeros([], jnp.int32), init_value(wd))

    def update(grads, state, params=None):
        check_state("add_decayed_weights", state, AddDecayedWeightsState, grads, trees={})
        if params is None:
            raise ValueError("add_decayed_weights: update needs params (the weights to decay), got params=None")
        full = resolve_mask(params, mask, owner="add_decayed_weights")
        lam = current(state.weight_decay, wd, state.count)
        updates = jax.tree_util.tree_map(lambda g, p, m: g + cast(lam, g.dtype) * p if m else g, grads, params, full)
        return updates, state._replace(count=state.count + 1)

    with_program_key(update, "add_decayed_weights", static_key(mask), schedule_key(wd))
    return Optimizer(init, update)
