"""Stochastic gradient descent with momentum and Nesterov momentum, following ``torch.optim.SGD``.

With ``lr`` the learning rate at this step, ``mu`` the momentum and ``d`` the dampening::

    b <- g                      at the first step
    b <- mu b + (1 - d) g       afterwards
    w <- w - lr (g + mu b)      (nesterov)   or   w <- w - lr b   (otherwise)

The chapter's velocity form ``m <- mu m - lr g; w <- w + m`` is the same algorithm with
``m = -lr b`` while the learning rate is constant; its Nesterov form (gradient taken at
``w + mu m``) produces PyTorch's iterates shifted by ``mu m``: PyTorch's ``w`` is the
chapter's look-ahead point ``w + mu m``. ``tests/test_optim_sgd.py`` checks both statements.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxnet.optim.base import tree_map_n
from jaxnet.optim.checks import check_float_params, check_state, stored_names
from jaxnet.optim.hyperparams import Hyperparameters, Schedule, cast, check_hyperparameter, current
from jaxnet.optim.program import schedule_key, with_program_key
from jaxnet.types import Array, Optimizer


class SgdState(NamedTuple):
    """State of :func:`sgd`.

    Attributes:
      count: number of updates taken (int32).
      hyper: the :class:`~jaxnet.optim.hyperparams.Hyperparameters` ``learning_rate`` (unless
        it is a schedule), ``momentum`` (unless plain SGD, built with ``momentum=0``) and
        ``dampening`` (unless built with ``dampening=0``: no dampening term); each is also
        readable as a property, ``None`` where absent.
      trace: the momentum buffer ``b`` (a pytree like the params), or ``None`` for plain SGD.
    """

    count: jax.Array  # type: ignore[assignment]  # a field named like tuple.count (as in optax): the field wins
    hyper: Hyperparameters
    trace: Any = None

    @property
    def learning_rate(self) -> jax.Array | None:
        """``learning_rate`` from ``hyper`` (None if scheduled or absent)."""
        return self.hyper.get("learning_rate")

    @property
    def momentum(self) -> jax.Array | None:
        """``momentum`` from ``hyper`` (None if scheduled or absent)."""
        return self.hyper.get("momentum")

    @property
    def dampening(self) -> jax.Array | None:
        """``dampening`` from ``hyper`` (None if scheduled or absent)."""
        return self.hyper.get("dampening")


def sgd(
    learning_rate: float | Array | Schedule = 0.01,
    momentum: float | Array | Schedule = 0.0,
    dampening: float = 0.0,
    nesterov: bool = False,
) -> Optimizer:
    """SGD with optional (Nesterov) momentum, PyTorch's update rule and defaults.

    Args:
      learning_rate: a float >= 0 or a schedule ``step -> value``.
      momentum: ``mu >= 0``; 0 builds plain SGD with no momentum buffer (as PyTorch does).
      dampening: ``d`` in [0, 1]: the new gradient enters the buffer with weight ``1 - d``.
      nesterov: use PyTorch's Nesterov form ``w <- w - lr (g + mu b)``; needs ``momentum > 0``
        and ``dampening == 0``.

    Returns:
      An :class:`~jaxnet.types.Optimizer` whose state is an :class:`SgdState`.

    Raises:
      ValueError: for a negative or non-finite learning rate or momentum, a dampening outside
        [0, 1], or ``nesterov=True`` without momentum or with dampening.
    """
    lr = check_hyperparameter("sgd", "learning_rate", learning_rate, allow_schedule=True)
    mu = check_hyperparameter("sgd", "momentum", momentum)
    damp = check_hyperparameter("sgd", "dampening", dampening, high=1.0, high_open=False)
    if not isinstance(nesterov, bool):
        raise TypeError(f"sgd: nesterov must be a bool, got {nesterov!r}")
    if nesterov and (isinstance(mu, float) and mu <= 0):
        raise ValueError(f"sgd: nesterov=True needs momentum > 0, got momentum={momentum!r}")
    if nesterov and not (isinstance(damp, float) and damp == 0):
        raise ValueError(f"sgd: nesterov=True needs dampening=0, got dampening={dampening!r}")
    # momentum given as 0 means no buffer at all; a traced momentum (vmap) keeps one.
    plain = isinstance(mu, float) and mu == 0.0
    # dampening given as 0 needs no term: with b = 0 at the start, b <- mu b + g also gives
    # PyTorch's first step b = g. Its field is then None (set it at construction to vary it).
    undamped = isinstance(damp, float) and damp == 0.0
    if plain:
        names = stored_names(learning_rate=lr)
    else:
        names = (
            stored_names(learning_rate=lr, momentum=mu)
            if undamped
            else stored_names(learning_rate=lr, momentum=mu, dampening=damp)
        )

    def init(params):
        check_float_params("sgd", params)
        count = jnp.zeros([], jnp.int32)
        if plain:
            return SgdState(count, Hyperparameters.pack(learning_rate=lr))
        trace = jax.tree_util.tree_map(lambda p: jnp.zeros(jnp.shape(p), jnp.result_type(p)), params)
        hyper = (
            Hyperparameters.pack(learning_rate=lr, momentum=mu)
            if undamped
            else Hyperparameters.pack(learning_rate=lr, momentum=mu, dampening=damp)
        )
        return SgdState(count, hyper, trace)

    def update(grads, state, params=None):
        del params
        check_state("sgd", state, SgdState, grads, hyper_names=names, trees={"trace": not plain})
        hp = state.hyper  # each value is read once here, not once per leaf
        rate = current(hp.get("learning_rate"), lr, state.count)
        if plain:
            updates = jax.tree_util.tree_map(lambda g: -cast(rate, g.dtype) * g, grads)
            return updates, state._replace(count=state.count + 1)
        # PyTorch starts the buffer at g itself (no dampening on the first step); b is 0 then.
        new_weight = None if undamped else jnp.where(state.count == 0, 1.0, 1.0 - hp["dampening"])
        momentum_ = hp["momentum"]

        def leaf(g, b):
            m = cast(momentum_, g.dtype)
            b = m * b + (g if undamped else cast(new_weight, g.dtype) * g)
            step = g + m * b if nesterov else b
            return -cast(rate, g.dtype) * step, b

        updates, trace = tree_map_n(leaf, 2, grads, state.trace)
        return updates, state._replace(count=state.count + 1, trace=trace)

    with_program_key(update, "sgd", plain, undamped, nesterov, schedule_key(lr))
    return Optimizer(init, update)
