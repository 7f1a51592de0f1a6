"""Hyperparameters as state: validation, schedules resolved on the step count, and editing a live state.

Every optimizer keeps its hyperparameters as scalar arrays in the fields of its state
NamedTuple (``state.learning_rate``, ``state.b1``, ...). A compiled step therefore reads
them as inputs: changing one between calls does not recompile, and ``jax.vmap`` over a
vector of them trains several copies at once. A hyperparameter given as a schedule
``step -> value`` is a function, not a number, so its field holds ``None`` and the value is
``schedule(state.count)`` at each update.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

Schedule = Callable[[Any], Any]


def float_dtype():
    """The default float dtype: float64 under ``jax_enable_x64``, else float32."""
    return jnp.asarray(0.0).dtype


def _is_tracer(value) -> bool:
    return isinstance(value, jax.core.Tracer)


def check_schedule(owner: str, name: str, schedule) -> Schedule:
    """Check that ``schedule(step)`` returns a scalar (by tracing it once, without running it).

    Raises:
      ValueError: if the schedule's value is not a scalar.
    """
    try:
        out = jax.eval_shape(schedule, jax.ShapeDtypeStruct((), jnp.int32))
    except Exception as e:  # the schedule's own error says more than ours would
        raise ValueError(f"{owner}: the schedule given as {name} failed on a step count: {e}") from e
    leaves = jax.tree_util.tree_leaves(out)
    if len(leaves) != 1 or leaves[0].shape != ():
        shapes = [leaf.shape for leaf in leaves]
        raise ValueError(f"{owner}: the schedule given as {name} must return a scalar, got shape(s) {shapes}")
    return schedule


def check_hyperparameter(owner: str, name: str, value, *, low=0.0, high=None, high_open=True,
                         allow_schedule=False):
    """Validate a scalar hyperparameter; return a float, a schedule, or a traced value as given.

    ``low`` is inclusive, ``high`` exclusive unless ``high_open=False``. Traced values (an
    optimizer built inside ``jax.vmap``) are not checked: their value is unknown.

    Raises:
      TypeError: for a schedule where only numbers are allowed, or a non-number.
      ValueError: for a value that is not a finite scalar within range, naming ``owner`` and ``name``.
    """
    if callable(value) and not hasattr(value, "shape"):
        if not allow_schedule:
            raise TypeError(f"{owner}: {name} must be a number, got the callable {value!r}")
        return check_schedule(owner, name, value)
    if _is_tracer(value):
        if np.shape(value) != ():
            raise ValueError(f"{owner}: {name} must be a scalar, got shape {np.shape(value)}")
        return value
    if isinstance(value, (bool, np.bool_)) or isinstance(value, str):
        raise TypeError(f"{owner}: {name} must be a number, got {value!r}")
    if np.shape(value) != ():
        raise ValueError(f"{owner}: {name} must be a scalar, got shape {np.shape(value)}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: {name} must be a number, got {value!r}") from None
    bound = f"[{low}, {high}{')' if high_open else ']'}" if high is not None else f">= {low}"
    if not math.isfinite(v) or v < low or (high is not None and (v >= high if high_open else v > high)):
        raise ValueError(f"{owner}: {name} must be a finite number {'in ' if high is not None else ''}{bound}, "
                         f"got {value!r}")
    return v


def init_value(spec):
    """The state field of a hyperparameter: a scalar array, or ``None`` for a schedule."""
    if callable(spec) and not hasattr(spec, "shape"):
        return None
    return jnp.asarray(spec, dtype=float_dtype())


def current(field, spec, count):
    """The hyperparameter's value at this update: ``spec(count)`` for a schedule, else the state field."""
    if callable(spec) and not hasattr(spec, "shape"):
        return jnp.asarray(spec(count))
    return field


def cast(x, dtype):
    """A scalar hyperparameter in the dtype of the leaf it multiplies (no promotion of the moments)."""
    return jnp.asarray(x).astype(dtype)


# Ranges checked by set_hyperparameter for concrete values; any other field is only required to be finite.
_RANGES = {
    "learning_rate": (0.0, None), "momentum": (0.0, None), "dampening": (0.0, 1.0),
    "eps": (0.0, None), "eps_root": (0.0, None), "b1": (0.0, 1.0), "b2": (0.0, 1.0),
    "alpha": (0.0, 1.0), "weight_decay": (0.0, None), "lr_decay": (0.0, None),
    "max_norm": (0.0, None), "max_delta": (0.0, None),
}


def _walk(node, visit):
    """Rebuild ``node`` with ``visit(namedtuple) -> namedtuple`` applied to every NamedTuple, innermost first."""
    if isinstance(node, tuple) and hasattr(node, "_fields"):
        node = type(node)(*(_walk(c, visit) for c in node))
        return visit(node)
    if isinstance(node, (tuple, list)):
        return type(node)(_walk(c, visit) for c in node)
    if isinstance(node, dict):
        return {k: _walk(v, visit) for k, v in node.items()}
    return node


def set_hyperparameter(opt_state, name: str, value):
    """Return ``opt_state`` with every hyperparameter field called ``name`` set to ``value``.

    Works on any state built by :mod:`jaxnet.optim` (including ``chain`` and ``switch``
    states: all fields of that name change). The new value keeps the field's dtype and shape,
    so a compiled step given the new state does not recompile. To change only one of several
    fields of the same name, rebuild that NamedTuple with ``_replace``.

    Raises:
      ValueError: if no field ``name`` exists, if it is driven by a schedule (its field is
        ``None``), or if a concrete ``value`` is out of range (e.g. a negative learning rate).
    """
    lo_hi = _RANGES.get(name)
    if not _is_tracer(value):
        if lo_hi is not None:
            check_hyperparameter("set_hyperparameter", name, value, low=lo_hi[0], high=lo_hi[1],
                                 high_open=name != "dampening")
        elif name not in ("switched",):
            arr = np.asarray(value)
            if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                raise ValueError(f"set_hyperparameter: {name} must be finite, got {value!r}")
    found, scheduled = [], []

    def visit(nt):
        if name not in nt._fields or name == "count":
            return nt
        old = getattr(nt, name)
        if old is None:
            scheduled.append(type(nt).__name__)
            return nt
        found.append(type(nt).__name__)
        new = jnp.asarray(value, dtype=jnp.asarray(old).dtype)
        if new.shape != jnp.shape(old):
            raise ValueError(f"set_hyperparameter: {name} must have shape {jnp.shape(old)}, got {new.shape}")
        return nt._replace(**{name: new})

    out = _walk(opt_state, visit)
    if not found:
        if scheduled:
            raise ValueError(f"set_hyperparameter: {name} of {scheduled[0]} is None: it follows a schedule (build "
                             f"the optimizer with a new schedule instead) or this optimizer was built without it")
        raise ValueError(f"set_hyperparameter: the optimizer state has no hyperparameter {name!r}; "
                         f"it has {sorted(hyperparameters(opt_state))}")
    return out


def hyperparameters(opt_state) -> dict:
    """The hyperparameter fields of a state, name -> scalar array (the first of each name).

    Scheduled hyperparameters (whose field is ``None``) and absent ones are left out.
    """
    out: dict = {}

    def visit(nt):
        for f in nt._fields:
            v = getattr(nt, f)
            is_scalar = hasattr(v, "shape") and jnp.shape(v) == ()
            if f not in ("count", "switched") and f not in out and is_scalar and f in _HYPER_FIELDS:
                out[f] = v
        return nt

    _walk(opt_state, visit)
    return out


_HYPER_FIELDS = frozenset(_RANGES) | {"initial_accumulator_value"}
