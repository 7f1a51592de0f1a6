"""Plumbing shared by every layer: building a :class:`~jaxnet.types.Layer` with checked
arguments, and validating shapes and sizes with messages that name the layer."""

from __future__ import annotations

import contextvars
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxnet.types import Array, Layer, check_key

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

    It also rejects a complex input, and checks ``params`` and ``state`` against what
    ``init`` builds for this input (by abstract evaluation, at trace time): params of
    another configuration raise :class:`ParamsMismatchError` naming the first differing
    path (``params['dense_1']['w']: expected shape (8, 3), got (8, 5)``), unless the
    input itself does not fit the layer, whose own message then comes first.

    Args:
      name: the display name used in error messages, e.g. ``"Dense(128)"``.
      scope: the user's ``name=``, the key combinators file params and state under
        (checked by :func:`check_scope`); ``None`` for kind and position.
    """
    scope = check_scope(name, scope)

    @functools.wraps(init)
    def checked_init(key, input_shape):
        check_key(f"{name}.init", key)
        return init(key, check_shape(name, input_shape))

    # What init builds depends only on the input shape: its abstract evaluation (a few ms of
    # tracing) is remembered per layer for the last few shapes, so an eager apply stays cheap.
    @functools.lru_cache(maxsize=8)
    def expected_shapes(feature_shape: tuple):
        try:
            return jax.eval_shape(lambda k: init(k, (-1, *feature_shape))[1:], _ABSTRACT_KEY)
        except Exception:  # init rejects this input: not a params question
            return None

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
        if key is not None:
            check_key(f"{name}.apply", key)
        check_input_dtype(name, x)

        def run():
            if uses_mask:
                return apply(params, state, x, key=key, train=train, mask=mask)
            return apply(params, state, x, key=key, train=train)

        if _INSIDE_CHECKED.get():  # an enclosing layer already checked these params as a whole
            return run()
        diff = params_difference(expected_shapes, params, state, x)
        if diff is None:
            token = _INSIDE_CHECKED.set(True)
            try:
                return run()
            finally:
                _INSIDE_CHECKED.reset(token)
        try:  # an input that does not fit the layer is the first thing to say
            jax.eval_shape(run)
        except ParamsMismatchError:
            pass
        except (ValueError, TypeError) as e:
            # the layer's own message (it starts with its name) about its input, not a raw JAX error
            if getattr(e, "jaxnet_input_error", False) or str(e).startswith(name):
                e.jaxnet_input_error = True  # type: ignore[union-attr]  # a mark read by enclosing layers
                raise
        except Exception:  # KeyError, IndexError...: what params of another structure cause
            pass
        raise ParamsMismatchError(
            f"{name}: {diff} (params or state of another model or configuration, or an input it was not built for)"
        )

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


class ParamsMismatchError(ValueError):
    """A layer was given params or state whose structure or shapes are not the ones its ``init`` builds."""


# Set while a layer runs whose params and state passed the check as a whole, so that its
# sublayers do not check their parts again. It is call-scoped (reset on return), never a setting.
_INSIDE_CHECKED = contextvars.ContextVar("jaxnet_params_checked", default=False)

# init only needs a key's shape and dtype for abstract evaluation
_ABSTRACT_KEY = jax.ShapeDtypeStruct((2,), jnp.uint32)


def _keystr(prefix: str, path) -> str:
    return prefix + "".join(
        f"[{p.key!r}]" if hasattr(p, "key") else f"[{p.idx}]" if hasattr(p, "idx") else f".{getattr(p, 'name', p)}"
        for p in path
    )


def _tree_difference(prefix: str, expected, got) -> str | None:
    """The first path where ``got`` differs from ``expected`` (structure or shape), as a message; else None."""
    exp = dict(
        (_keystr(prefix, p), leaf)
        for p, leaf in jax.tree_util.tree_flatten_with_path(expected, is_leaf=lambda v: v is None)[0]
    )
    try:
        got_leaves = jax.tree_util.tree_flatten_with_path(got, is_leaf=lambda v: v is None)[0]
    except Exception:  # an object that is no pytree at all
        return f"{prefix} must be a pytree like {jax.tree_util.tree_structure(expected)}, got {type(got).__name__}"
    have = dict((_keystr(prefix, p), leaf) for p, leaf in got_leaves)
    for path in exp:
        if path not in have:
            return f"{path} is missing (got {prefix} with {sorted(have) or 'no leaves'})"
    found = []
    for path, leaf in have.items():
        if path not in exp:
            return f"{path} is not a parameter of this layer (expected {sorted(exp) or 'no leaves'})"
        e = exp[path]
        if e is None or leaf is None:
            if (e is None) != (leaf is None):
                found.append(f"{path}: expected {'None' if e is None else 'an array'}, got {type(leaf).__name__}")
            continue
        shape = tuple(leaf.shape) if hasattr(leaf, "shape") else tuple(jnp.shape(leaf))
        if shape != tuple(e.shape):
            found.append(f"{path}: expected shape {tuple(e.shape)}, got {shape}")
    return "; ".join(found[:4]) if found else None


def params_difference(expected_shapes: Callable, params, state, x) -> str | None:
    """Where ``params``/``state`` differ from what init builds for an input like ``x``, or ``None``.

    ``expected_shapes(feature_shape)`` gives init's ``(params, state)`` shapes, or ``None``
    when init rejects that input (the layer's own apply then says what is wrong with it).
    """
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) < 1:
        return None
    try:
        expected = expected_shapes(tuple(int(d) for d in shape[1:]))
    except TypeError:  # a shape that is not plain ints
        return None
    if expected is None:
        return None
    p_shapes, s_shapes = expected
    return _tree_difference("params", p_shapes, params) or _tree_difference("state", s_shapes, state)


def check_input_dtype(layer: str, x) -> None:
    """Reject a complex (or non-numeric) input with a ``TypeError`` naming the layer."""
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        return
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise TypeError(f"{layer}.apply: the input must be real, got complex dtype {dtype}")


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


def mask_after(mask: Any, x: Any, y: Any) -> Any:
    """The mask that the layers after one mapping ``x`` to ``y`` get (the rule of ``serial``).

    A ``[batch, time]`` token mask stays one while the output keeps the token axes: ``y`` (the
    first array of a tuple) starts with ``[batch, time]`` and has no fewer axes than ``x``.
    Once a layer summarizes the sequence (``RNN(return_sequences=False)``, ``Flatten``, a pool
    over time: ``[batch, time, features]`` to ``[batch, features]``), the token axis is gone and
    the mask becomes the ``[batch]`` sample mask ``any(mask > 0, axis=1)``: a sample is real if
    any of its tokens is. ``None`` and ``[batch]`` masks pass unchanged.
    """
    if mask is None or jnp.ndim(mask) != 2:
        return mask
    x_shape = tuple(getattr(_leading(x), "shape", ()))
    y_shape = tuple(getattr(_leading(y), "shape", ()))
    if len(y_shape) >= max(2, len(x_shape)) and y_shape[:2] == tuple(jnp.shape(mask)):
        return mask
    return jnp.any(jnp.asarray(mask) > 0, axis=1)


def check_shape(name: str, shape: Any) -> tuple:
    """Return ``shape`` as a tuple of ints (``-1`` allowed for the batch axis) or raise.

    A tuple of shapes (the input of ``parallel`` or ``FanInSum``) is checked entry by entry.
    """
    if isinstance(shape, (tuple, list)) and shape and all(isinstance(s, (tuple, list)) for s in shape):
        return tuple(check_shape(name, s) for s in shape)
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
