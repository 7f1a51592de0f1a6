"""Plumbing shared by every layer: building a :class:`~jaxnet.types.Layer` with checked
arguments, and validating shapes and sizes with messages that name the layer."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax.numpy as jnp

from jaxnet.types import Array, Layer

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
    scope: str | None = None,
    uses_mask: bool = False,
) -> Layer:
    """Wrap ``init``/``apply`` into a :class:`Layer` whose entry points check their arguments.

    The wrapper checks that ``train`` was given as a Python bool (it selects the code path
    at trace time, so it cannot be a traced value) and that ``mask``, when given, covers
    the leading axes of ``x`` (see :func:`check_mask`). It then calls
    ``apply(params, state, x, key=key, train=train)``, adding ``mask=mask`` only when
    ``uses_mask`` is true: a layer whose output depends on other samples or tokens
    (BatchNorm, attention, recurrences, combinators that pass it on) declares
    ``uses_mask=True``; every other layer never sees the mask.

    Args:
      name: the display name used in error messages, e.g. ``"Dense(128)"``.
      scope: the user's ``name=``, the key combinators file params and state under
        (checked by :func:`check_scope`); ``None`` for kind and position.
    """
    scope = check_scope(name, scope)

    @functools.wraps(init)
    def checked_init(key, input_shape):
        return init(key, check_shape(name, input_shape))

    @functools.wraps(apply)
    def checked_apply(params, state, x, *, key=None, train=_REQUIRED, mask=None):
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
        if mask is not None:
            mask = check_mask(name, mask, x)
        if uses_mask:
            return apply(params, state, x, key=key, train=train, mask=mask)
        return apply(params, state, x, key=key, train=train)

    return Layer(
        init=checked_init,
        apply=checked_apply,
        name=name,
        kind=kind,
        config=dict(config or {}),
        layers=tuple(layers),
        needs_key=needs_key,
        scope=scope,
    )


def check_scope(layer: str, scope: str | None) -> str | None:
    """A layer's ``name=``: ``None``, or a non-empty string of letters, digits, ``_``, ``-`` and ``.``."""
    if scope is None:
        return None
    if not isinstance(scope, str):
        raise TypeError(f"{layer}: name must be a string (the key of its params), got {scope!r}")
    if not scope or not all(c.isalnum() or c in "_-." for c in scope):
        raise ValueError(
            f"{layer}: name must be a non-empty string of letters, digits, '_', '-' and '.', got {scope!r}"
        )
    return scope


def _leading(x):
    """The array whose leading axes a mask covers: ``x`` itself, or the first of a pair ``(x, context)``."""
    while isinstance(x, (tuple, list)) and x:
        x = x[0]
    return x


def check_mask(layer: str, mask: Any, x: Array) -> Array | None:
    """Check a sample/token mask against ``x`` and return it as an array.

    ``mask`` holds weights (bool, or real numbers >= 0) over the leading axes of ``x``:
    shape ``[batch]`` (which samples are real) or ``[batch, time]`` (which tokens are
    real), equal to ``x.shape[:mask.ndim]``. For a pair ``(x, context)`` it covers ``x``.

    Raises:
      TypeError: for a complex or non-numeric mask.
      ValueError: for a mask of any other shape, naming the layer and both shapes.
    """
    lead = _leading(x)
    xshape = tuple(getattr(lead, "shape", ()))
    try:
        m = jnp.asarray(mask)
    except TypeError:
        raise TypeError(
            f"{layer}.apply: mask must be an array of bools or weights, got {type(mask).__name__}"
        ) from None
    if not (m.dtype == jnp.bool_ or jnp.issubdtype(m.dtype, jnp.integer) or jnp.issubdtype(m.dtype, jnp.floating)):
        raise TypeError(f"{layer}.apply: mask must hold bools or real weights, got dtype {m.dtype}")
    if m.ndim not in (1, 2) or m.ndim > len(xshape) or tuple(m.shape) != xshape[: m.ndim]:
        expected = " or ".join(str(xshape[:k]) for k in (1, 2) if k <= len(xshape)) or "an input with a batch axis"
        raise ValueError(
            f"{layer}.apply: mask must have shape [batch] or [batch, time] matching the input's leading axes "
            f"{expected}, got {tuple(m.shape)} for an input of shape {xshape}"
        )
    return m


def check_shape(name: str, shape: Any) -> tuple:
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


def check_size(layer: str, arg: str, value: Any) -> int:
    """A positive integer size (``Dense(128)``), or ``ValueError``/``TypeError`` naming the layer."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            raise TypeError(f"{layer}: {arg} must be an int, got float {value!r}; write {int(value)}")
        raise TypeError(f"{layer}: {arg} must be a positive int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{layer}: {arg} must be a positive int, got {value}")
    return value


def check_real(
    layer: str, arg: str, value: Any, *, low: float | None = None, high: float | None = None, low_open: bool = False
) -> float:
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


def fmt_shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join("batch" if s == -1 else str(s) for s in shape) + (",)" if len(shape) == 1 else ")")
