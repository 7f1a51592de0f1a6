"""Learning-rate schedules: pure functions ``step -> value`` of the update count (0 at the first update).

Any learning-rate argument of :mod:`jaxnet.optim` takes one of these (or any function of a
scalar int array returning a scalar). ``t`` below is the step. For the chapter's
"halve every 5 epochs" use ``step_decay(lr, 0.5, every=5 * steps_per_epoch)``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import jax.numpy as jnp

from jaxnet.optim.hyperparams import check_hyperparameter, check_schedule, float_dtype


def _number(owner, name, value, **kw):
    return check_hyperparameter(owner, name, value, **kw)


def _positive_int(owner, name, value) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{owner}: {name} must be an int, got {value!r}")
    value = int(value)
    if value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")
    return value


def _t(step):
    return jnp.asarray(step).astype(float_dtype())


def constant_schedule(value: float) -> Callable:
    """``lr(t) = value``."""
    v = _number("constant_schedule", "value", value)
    return lambda step: jnp.full((), v, float_dtype())


def step_decay(
    init_value: float, factor: float, *, every: int | None = None, boundaries: Sequence[int] | None = None
) -> Callable:
    """Multiply by ``factor`` every ``every`` steps, or once at each of the given ``boundaries``.

    ``lr(t) = init_value * factor^floor(t / every)`` or ``init_value * factor^(#boundaries <= t)``.
    The chapter's "halve every 5 epochs": ``step_decay(lr, 0.5, every=5 * steps_per_epoch)``;
    "divide by 10 every 20": ``step_decay(lr, 0.1, every=20 * steps_per_epoch)``.

    Raises:
      ValueError: unless exactly one of ``every`` (a positive int) and ``boundaries``
        (increasing non-negative ints) is given, or for a negative ``factor``.
    """
    v0 = _number("step_decay", "init_value", init_value)
    f = _number("step_decay", "factor", factor)
    if (every is None) == (boundaries is None):
        raise ValueError(
            f"step_decay: give exactly one of every= and boundaries=, got every={every!r}, boundaries={boundaries!r}"
        )
    if boundaries is None:
        k = _positive_int("step_decay", "every", every)
        return lambda step: v0 * jnp.asarray(f, float_dtype()) ** (jnp.asarray(step) // k).astype(float_dtype())
    b = [int(x) for x in boundaries]
    if any(x < 0 for x in b) or any(x >= y for x, y in itertools.pairwise(b)):
        raise ValueError(f"step_decay: boundaries must be increasing non-negative ints, got {list(boundaries)!r}")
    bounds = jnp.asarray(b, jnp.int32)
    return lambda step: v0 * jnp.asarray(f, float_dtype()) ** jnp.sum(jnp.asarray(step) >= bounds).astype(float_dtype())


def exponential_decay(init_value: float, k: float) -> Callable:
    """``lr(t) = init_value * exp(-k t)`` (the chapter's ``eps_0 e^(-kt)``); a factor ``r`` per step is ``k = -ln r``.

    Raises:
      ValueError: for a negative or non-finite ``init_value`` or ``k``.
    """
    v0 = _number("exponential_decay", "init_value", init_value)
    k_ = _number("exponential_decay", "k", k)
    return lambda step: v0 * jnp.exp(-k_ * _t(step))


def inverse_time_decay(init_value: float, k: float) -> Callable:
    """``lr(t) = init_value / (1 + k t)`` (the chapter's 1/t decay).

    Raises:
      ValueError: for a negative or non-finite ``init_value`` or ``k``.
    """
    v0 = _number("inverse_time_decay", "init_value", init_value)
    k_ = _number("inverse_time_decay", "k", k)
    return lambda step: v0 / (1.0 + k_ * _t(step))


def cosine_decay(init_value: float, decay_steps: int, end_value: float = 0.0) -> Callable:
    """``lr(t) = end + (init - end) (1 + cos(pi min(t, T)/T)) / 2`` with ``T = decay_steps``; ``end`` after ``T``.

    Raises:
      ValueError: for a non-positive ``decay_steps`` or a negative value.
    """
    v0 = _number("cosine_decay", "init_value", init_value)
    v1 = _number("cosine_decay", "end_value", end_value)
    T = _positive_int("cosine_decay", "decay_steps", decay_steps)
    return lambda step: v1 + (v0 - v1) * 0.5 * (1.0 + jnp.cos(math.pi * jnp.minimum(_t(step), T) / T))


def linear_schedule(init_value: float, end_value: float, transition_steps: int) -> Callable:
    """``lr(t)`` goes linearly from ``init_value`` (t = 0) to ``end_value`` (t >= ``transition_steps``).

    Raises:
      ValueError: for a non-positive ``transition_steps`` or a negative value.
    """
    v0 = _number("linear_schedule", "init_value", init_value)
    v1 = _number("linear_schedule", "end_value", end_value)
    T = _positive_int("linear_schedule", "transition_steps", transition_steps)
    return lambda step: v0 + (v1 - v0) * jnp.minimum(_t(step), T) / T


def linear_warmup(peak_value: float, warmup_steps: int, init_value: float = 0.0) -> Callable:
    """Warm-up: linear from ``init_value`` to ``peak_value`` over ``warmup_steps``, then ``peak_value``."""
    return linear_schedule(init_value, peak_value, warmup_steps)


def join(schedules: Sequence[Callable], boundaries: Sequence[int]) -> Callable:
    """Run ``schedules[i]`` from ``boundaries[i-1]`` on, each restarted at 0 there.

    ``join([warmup, decay], [500])(t)`` is ``warmup(t)`` for ``t < 500`` and ``decay(t - 500)`` after.

    Raises:
      ValueError: if ``len(boundaries) != len(schedules) - 1``, the boundaries are not increasing
        positive ints, or a schedule does not return a scalar.
    """
    schedules = list(schedules)
    b = [int(x) for x in boundaries]
    if not schedules or len(b) != len(schedules) - 1:
        raise ValueError(
            f"join: needs one boundary fewer than schedules, got {len(schedules)} schedules and "
            f"boundaries {list(boundaries)!r}"
        )
    if any(x <= 0 for x in b) or any(x >= y for x, y in itertools.pairwise(b)):
        raise ValueError(f"join: boundaries must be increasing positive ints, got {list(boundaries)!r}")
    for i, s in enumerate(schedules):
        if not callable(s):
            raise TypeError(f"join: schedules[{i}] must be a function step -> value, got {s!r}")
        check_schedule("join", f"schedules[{i}]", s)
    starts = [0, *b]

    def schedule(step):
        step = jnp.asarray(step)
        value = schedules[0](step)
        for start, s in zip(starts[1:], schedules[1:], strict=True):
            value = jnp.where(step >= start, s(step - start), value)
        return value

    return schedule


def warmup_cosine_decay(
    peak_value: float, warmup_steps: int, total_steps: int, init_value: float = 0.0, end_value: float = 0.0
) -> Callable:
    """Linear warm-up to ``peak_value`` over ``warmup_steps``, then cosine decay to ``end_value`` at ``total_steps``.

    Raises:
      ValueError: unless ``0 < warmup_steps < total_steps``.
    """
    w = _positive_int("warmup_cosine_decay", "warmup_steps", warmup_steps)
    T = _positive_int("warmup_cosine_decay", "total_steps", total_steps)
    if w >= T:
        raise ValueError(f"warmup_cosine_decay: warmup_steps must be < total_steps, got {w} and {T}")
    return join([linear_warmup(peak_value, w, init_value), cosine_decay(peak_value, T - w, end_value)], [w])
