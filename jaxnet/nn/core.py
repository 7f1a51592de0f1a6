"""Plumbing shared by every layer: building a :class:`~jaxnet.types.Layer` with checked
arguments, and validating shapes and sizes with messages that name the layer."""
from __future__ import annotations

import functools
import math
from typing import Any, Callable, Mapping

from jaxnet.types import Layer

_REQUIRED = object()


def make_layer(
    name: str,
    init: Callable,
    apply: Callable,
    *,
    kind: str,
    config: Mapping[str, Any] | None = None,
    layers: tuple = (),
    needs_key: bool = False,
) -> Layer:
    """Wrap ``init``/``apply`` into a :class:`Layer` whose entry points check their arguments.

    ``apply`` is called as ``apply(params, state, x, key=key, train=train)`` after the
    wrapper has checked that ``train`` was given as a Python bool (it selects the code
    path at trace time, so it cannot be a traced value).
    """

    @functools.wraps(init)
    def checked_init(key, input_shape):
        return init(key, check_shape(name, input_shape))

    @functools.wraps(apply)
    def checked_apply(params, state, x, *, key=None, train=_REQUIRED):
        if train is _REQUIRED:
            raise TypeError(
                f"{name}.apply: missing keyword argument train=; pass train=True for training "
                "or train=False for evaluation"
            )
        if not isinstance(train, bool):
            raise TypeError(
                f"{name}.apply: train must be a Python bool (True or False), got {type(train).__name__}; "
                "it selects the code path at trace time, so mark it static under jax.jit"
            )
        return apply(params, state, x, key=key, train=train)

    return Layer(
        init=checked_init,
        apply=checked_apply,
        name=name,
        kind=kind,
        config=dict(config or {}),
        layers=tuple(layers),
        needs_key=needs_key,
    )


def check_shape(name: str, shape) -> tuple:
    """Return ``shape`` as a tuple of ints (``-1`` allowed for the batch axis) or raise."""
    if isinstance(shape, int) or shape is None:
        raise TypeError(
            f"{name}.init: input_shape must be a tuple including the batch axis, e.g. (-1, 784), got {shape!r}"
        )
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise TypeError(f"{name}.init: input_shape must be a tuple of ints, got {shape!r}") from None
    if len(shape) < 1:
        raise ValueError(f"{name}.init: input_shape must have at least one axis, got {shape}")
    if any(s < -1 or s == 0 for s in shape):
        raise ValueError(f"{name}.init: input_shape sizes must be positive (or -1 for the batch), got {shape}")
    return shape


def check_size(layer: str, arg: str, value) -> int:
    """A positive integer size (``Dense(128)``), or ``ValueError``/``TypeError`` naming the layer."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            raise TypeError(f"{layer}: {arg} must be an int, got float {value!r}; write {int(value)}")
        raise TypeError(f"{layer}: {arg} must be a positive int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{layer}: {arg} must be a positive int, got {value}")
    return value


def check_real(layer: str, arg: str, value, *, low=None, high=None, low_open=False) -> float:
    """A finite real number within bounds, or an error naming the layer and argument."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{layer}: {arg} must be a real number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{layer}: {arg} must be finite, got {value!r}")
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{layer}: {arg} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and v > high:
        raise ValueError(f"{layer}: {arg} must be <= {high}, got {value!r}")
    return v


def fmt_shape(shape) -> str:
    return "(" + ", ".join("batch" if s == -1 else str(s) for s in shape) + (",)" if len(shape) == 1 else ")")
