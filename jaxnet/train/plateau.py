"""Lower the learning rate when a validation quantity stops improving (section 4.3.5), inside ``fit``.

The chapter suggests cutting the learning rate once the validation error no longer falls.
:class:`ReduceOnPlateau` is that rule (PyTorch's ``ReduceLROnPlateau`` and Keras's
``ReduceLROnPlateau`` name it so): after ``patience`` epochs without an improvement larger
than ``min_delta``, multiply the learning rate by ``factor`` (never below ``min_lr``), then
wait ``cooldown`` epochs before counting again. Pass it to ``fit(reduce_on_plateau=...)``.

The learning rate is state, not a constant of the compiled program (see
:mod:`jaxnet.optim.hyperparams`), so ``fit`` applies a cut by editing the optimizer state
between two compiled calls: nothing recompiles. With ``epochs_per_call > 1`` a cut decided
inside a call takes effect from the next call.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax.numpy as jnp

from jaxnet.optim.hyperparams import hyperparameters, replace_hyperparameter


@dataclasses.dataclass(frozen=True)
class ReduceOnPlateau:
    """Multiply the learning rate by ``factor`` after ``patience`` epochs in which ``monitor`` did not improve.

    Args:
      monitor: a history key, e.g. ``"val_loss"`` (default) or ``"val_accuracy"``.
      factor: the multiplier of each cut, in (0, 1).
      patience: epochs without improvement before a cut (>= 1).
      min_delta: the smallest change that counts as an improvement (>= 0).
      cooldown: epochs after a cut during which no new cut is counted (>= 0).
      min_lr: the learning rate never goes below this (>= 0).
      mode: ``"min"``, ``"max"`` or ``"auto"`` (``"min"`` for names containing "loss").
      hyperparameter: the stored hyperparameter to cut (default ``"learning_rate"``; every
        entry of that name in a ``chain`` or ``switch`` state is cut).

    Raises:
      ValueError/TypeError: for values out of range or an unknown mode.
    """

    monitor: str = "val_loss"
    factor: float = 0.1
    patience: int = 10
    min_delta: float = 0.0
    cooldown: int = 0
    min_lr: float = 0.0
    mode: str = "auto"
    hyperparameter: str = "learning_rate"

    def __post_init__(self):
        if not isinstance(self.monitor, str) or not self.monitor:
            raise TypeError(f"ReduceOnPlateau: monitor must be a history key such as 'val_loss', got {self.monitor!r}")
        for name in ("patience", "cooldown"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if name == "patience" else 0):
                raise ValueError(f"ReduceOnPlateau: {name} must be an int >= {int(name == 'patience')}, got {v!r}")
        for name, lo, hi in (("factor", 0.0, 1.0), ("min_delta", 0.0, math.inf), ("min_lr", 0.0, math.inf)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise TypeError(f"ReduceOnPlateau: {name} must be a finite number, got {v!r}")
            ok = lo < v < hi if name == "factor" else v >= lo
            if not ok:
                want = "in (0, 1)" if name == "factor" else ">= 0"
                raise ValueError(f"ReduceOnPlateau: {name} must be {want}, got {v!r}")
        if self.mode not in ("min", "max", "auto"):
            raise ValueError(f"ReduceOnPlateau: mode must be 'min', 'max' or 'auto', got {self.mode!r}")

    @property
    def minimize(self) -> bool:
        """Whether smaller values of ``monitor`` are better."""
        return self.mode == "min" or (self.mode == "auto" and "loss" in self.monitor)


class PlateauState(NamedTuple):
    """The rule's counters: ``best`` value so far, epochs ``wait``-ed, ``cooldown`` left, ``cuts`` made."""

    best: float | None = None
    wait: int = 0
    cooldown: int = 0
    cuts: int = 0


def plateau_step(rule: ReduceOnPlateau, state: PlateauState, value: float) -> tuple[PlateauState, bool]:
    """Count one epoch's ``value``; return the new counters and whether to cut the learning rate now.

    A non-finite value counts as no improvement.
    """
    better = state.best is None or (
        math.isfinite(value)
        and (value < state.best - rule.min_delta if rule.minimize else value > state.best + rule.min_delta)
    )
    if better:
        return state._replace(best=value, wait=0, cooldown=max(state.cooldown - 1, 0)), False
    if state.cooldown > 0:
        return state._replace(cooldown=state.cooldown - 1), False
    wait = state.wait + 1
    if wait >= rule.patience:
        return state._replace(wait=0, cooldown=rule.cooldown, cuts=state.cuts + 1), True
    return state._replace(wait=wait), False


def cut(rule: ReduceOnPlateau, opt_state):
    """``opt_state`` with its learning rate multiplied by ``factor``, floored at ``min_lr`` (same dtype and shape).

    Raises:
      ValueError: when the state stores no such hyperparameter (e.g. it follows a schedule).
    """
    return replace_hyperparameter(
        opt_state,
        rule.hyperparameter,
        lambda old: jnp.maximum(old * rule.factor, rule.min_lr).astype(jnp.asarray(old).dtype),
        owner="ReduceOnPlateau",
    )


def current_value(rule: ReduceOnPlateau, opt_state) -> float:
    """The stored value of the rule's hyperparameter in ``opt_state`` (the first one of that name)."""
    return float(jnp.ravel(jnp.asarray(hyperparameters(opt_state)[rule.hyperparameter]))[0])
