"""Hyperparameters as state: validation, schedules resolved on the step count, and editing a live state.

Every optimizer keeps its hyperparameters as arrays in its state, so a compiled step reads
them as inputs: changing one between calls does not recompile, and ``jax.vmap`` over a
vector of them trains several copies at once. ``sgd``, ``adagrad``, ``rmsprop`` and ``adam``
keep all of theirs in ONE array, a :class:`Hyperparameters` pytree in the state's ``hyper``
field, read by name (``state.hyper["b1"]``, or the property ``state.b1``): a compiled step
takes one input buffer for them instead of one per hyperparameter, which on a GPU costs
about 10 % of a small step (``benchmarks/step_overhead.py``). Single-valued transforms
(clipping, weight decay) keep theirs as a scalar field of the same name.

A hyperparameter given as a schedule ``step -> value`` is a function, not a number: it has
no stored value (the property reads ``None``) and is ``schedule(state.count)`` at each update.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxnet.types import Array, OptState

#: A hyperparameter as a function of the step: ``schedule(count) -> value`` (``count`` is 0 at the first update).
Schedule = Callable[[Any], Any]


def float_dtype() -> np.dtype:
    """The default float dtype: float64 under ``jax_enable_x64``, else float32."""
    return jnp.asarray(0.0).dtype


def _is_tracer(value) -> bool:
    return isinstance(value, jax.core.Tracer)


# The steps at which a schedule given as a hyperparameter is evaluated at construction.
_PROBE_STEPS = (0, 1, 2, 10, 100, 1000, 10_000, 100_000)


def check_schedule(owner: str, name: str, schedule: Any, *, low: float | None = None) -> Schedule:
    """Check that ``schedule(step)`` returns a scalar (by tracing it once), and, with ``low``,
    that its value at a few steps (0, 1, 2, 10, ... 100000) is finite and ``>= low``, as a
    plain value would have to be.

    Raises:
      ValueError: if the schedule's value is not a scalar, or is non-finite or below ``low``
        at a probed step (naming the step and the value).
    """
    try:
        out = jax.eval_shape(schedule, jax.ShapeDtypeStruct((), jnp.int32))
    except Exception as e:  # the schedule's own error says more than ours would
        raise ValueError(f"{owner}: the schedule given as {name} failed on a step count: {e}") from e
    leaves = jax.tree_util.tree_leaves(out)
    if len(leaves) != 1 or leaves[0].shape != ():
        shapes = [leaf.shape for leaf in leaves]
        raise ValueError(f"{owner}: the schedule given as {name} must return a scalar, got shape(s) {shapes}")
    if low is not None:
        for step in _PROBE_STEPS:
            try:
                v = float(schedule(jnp.asarray(step, jnp.int32)))
            except Exception:  # a schedule that only traces (e.g. reads a traced value): checked by its shape only
                break
            if not math.isfinite(v) or v < low:
                raise ValueError(
                    f"{owner}: the schedule given as {name} must give finite values >= {low}, got {v!r} at step {step}"
                )
    return schedule


def check_hyperparameter(
    owner: str,
    name: str,
    value: Any,
    *,
    low: float = 0.0,
    high: float | None = None,
    high_open: bool = True,
    allow_schedule: bool = False,
) -> Any:
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
        return check_schedule(owner, name, value, low=low)
    if _is_tracer(value):
        if np.shape(value) != ():
            raise ValueError(f"{owner}: {name} must be a scalar, got shape {np.shape(value)}")
        return value
    if isinstance(value, (bool, np.bool_, str)):
        raise TypeError(f"{owner}: {name} must be a number, got {value!r}")
    if np.shape(value) != ():
        raise ValueError(f"{owner}: {name} must be a scalar, got shape {np.shape(value)}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: {name} must be a number, got {value!r}") from None
    bound = f"[{low}, {high}{')' if high_open else ']'}" if high is not None else f">= {low}"
    if not math.isfinite(v) or v < low or (high is not None and (v >= high if high_open else v > high)):
        raise ValueError(
            f"{owner}: {name} must be a finite number {'in ' if high is not None else ''}{bound}, got {value!r}"
        )
    return v


def _is_schedule(spec) -> bool:
    return callable(spec) and not hasattr(spec, "shape")


def init_value(spec: float | Array | Schedule) -> Array | None:
    """The state field of a single-valued transform's hyperparameter: a scalar array, or ``None`` for a schedule."""
    if _is_schedule(spec):
        return None
    return jnp.asarray(spec, dtype=float_dtype())


@jax.tree_util.register_pytree_with_keys_class
class Hyperparameters:
    """An optimizer's scalar hyperparameters in one array: ``values[..., i]`` is ``names[i]``.

    One pytree leaf (one buffer for a compiled step) however many hyperparameters there are.
    Stacked copies (an ensemble, a vmapped sweep) have leading axes: ``values`` is then
    ``[K, len(names)]`` and ``hp["learning_rate"]`` is ``[K]``. ``scheduled`` lists the
    hyperparameters that follow a schedule and so have no stored value. In a checkpoint the
    array's path names its entries (``opt_state/hyper/learning_rate,b1,...``).
    """

    __slots__ = ("names", "scheduled", "values")

    def __init__(self, names: tuple, values, scheduled: tuple = ()):
        self.names, self.values, self.scheduled = tuple(names), values, tuple(scheduled)

    @classmethod
    def pack(cls, **specs: float | Array | Schedule) -> Hyperparameters:
        """From ``name=value or schedule`` (checked values, tracers allowed): the numbers stacked, schedules listed."""
        names = tuple(k for k, v in specs.items() if not _is_schedule(v))
        scheduled = tuple(k for k, v in specs.items() if _is_schedule(v))
        dtype = float_dtype()
        values = jnp.stack([jnp.asarray(specs[k], dtype) for k in names]) if names else None
        return cls(names, values, scheduled)

    def __contains__(self, name) -> bool:
        return name in self.names

    def _index(self, name: str) -> int:
        if name not in self.names:
            why = "it follows a schedule" if name in self.scheduled else f"it has {list(self.names)}"
            raise KeyError(f"hyperparameter {name!r} has no stored value: {why}")
        return self.names.index(name)

    def __getitem__(self, name: str):
        return self.values[..., self._index(name)]

    def get(self, name: str, default: Any = None) -> Any:
        """The value of ``name``, or ``default`` when it is absent or scheduled."""
        return self[name] if name in self.names else default

    def replace(self, name: str, value: float | Array) -> Hyperparameters:
        """A copy with ``name`` set to ``value`` (broadcast over any stacked axes), in this array's dtype."""
        i = self._index(name)
        value = jnp.broadcast_to(jnp.asarray(value, self.values.dtype), self.values.shape[:-1])
        return Hyperparameters(self.names, self.values.at[..., i].set(value), self.scheduled)

    def tree_flatten_with_keys(self) -> tuple[tuple[tuple[Any, Any], ...], tuple]:
        # the leaf's path names its entries: "opt_state/hyper/learning_rate,b1,b2,eps,eps_root" in a checkpoint
        return ((jax.tree_util.GetAttrKey(",".join(self.names)), self.values),), (self.names, self.scheduled)

    def tree_flatten(self) -> tuple[tuple[Any, ...], tuple]:
        return (self.values,), (self.names, self.scheduled)

    @classmethod
    def tree_unflatten(cls, aux: tuple, children: Sequence[Any]) -> Hyperparameters:
        return cls(aux[0], children[0], aux[1])

    def __repr__(self) -> str:
        if self.values is None or not hasattr(self.values, "shape"):
            return f"Hyperparameters({self.names}, {self.values!r})"
        if self.values.ndim == 1 and not _is_tracer(self.values):
            inner = ", ".join(f"{k}={float(v):.6g}" for k, v in zip(self.names, self.values, strict=True))
        else:
            inner = f"names={self.names}, values {self.values.dtype}{list(self.values.shape)}"
        sched = f", scheduled={self.scheduled}" if self.scheduled else ""
        return f"Hyperparameters({inner}{sched})"


def hyper_property(name: str) -> property:
    """A read-only state attribute ``name`` that reads ``self.hyper[name]`` (``None`` if scheduled or absent)."""
    return property(lambda self: self.hyper.get(name), doc=f"``{name}`` from ``hyper`` (None if scheduled or absent).")


def current(stored: Any, spec: Any, count: Array) -> Any:
    """The hyperparameter's value at this update: ``spec(count)`` for a schedule, else ``stored``."""
    if _is_schedule(spec):
        return jnp.asarray(spec(count))
    return stored


def cast(x: Any, dtype: DTypeLike) -> Array:
    """A scalar hyperparameter in the dtype of the leaf it multiplies (no promotion of the moments)."""
    return jnp.asarray(x).astype(dtype)


# Ranges checked by set_hyperparameter for concrete values; any other field is only required to be finite.
_RANGES = {
    "learning_rate": (0.0, None),
    "momentum": (0.0, None),
    "dampening": (0.0, 1.0),
    "eps": (0.0, None),
    "eps_root": (0.0, None),
    "b1": (0.0, 1.0),
    "b2": (0.0, 1.0),
    "alpha": (0.0, 1.0),
    "weight_decay": (0.0, None),
    "lr_decay": (0.0, None),
    "max_norm": (0.0, None),
    "max_delta": (0.0, None),
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


def replace_hyperparameter(opt_state: OptState, name: str, fn: Callable[[Array], Array], *, owner: str) -> OptState:
    """Return ``opt_state`` with every stored hyperparameter ``name`` replaced by ``fn(old)``.

    ``old`` is the current value with any stacked axes (``[K]`` for an ensemble's state);
    ``fn`` returns the new value of the same shape. Both a :class:`Hyperparameters` entry and
    a state field of that name count. ``owner`` names the caller in errors.

    Raises:
      ValueError: if no stored hyperparameter ``name`` exists, naming the ones that do, or
        if it follows a schedule.
    """
    found, scheduled = [], []

    def visit(nt):
        hp = getattr(nt, "hyper", None)
        if isinstance(hp, Hyperparameters):
            if name in hp.names:
                found.append(type(nt).__name__)
                return nt._replace(hyper=hp.replace(name, fn(hp[name])))
            if name in hp.scheduled:
                scheduled.append(type(nt).__name__)
            return nt
        if name not in nt._fields or name == "count":
            return nt
        old = getattr(nt, name)
        if old is None:
            scheduled.append(type(nt).__name__)
            return nt
        found.append(type(nt).__name__)
        return nt._replace(**{name: fn(old)})

    out = _walk(opt_state, visit)
    if not found:
        if scheduled:
            raise ValueError(
                f"{owner}: {name} of {scheduled[0]} is None: it follows a schedule (build "
                f"the optimizer with a new schedule instead) or this optimizer was built without it"
            )
        raise ValueError(
            f"{owner}: the optimizer state has no hyperparameter {name!r}; it has {sorted(hyperparameters(opt_state))}"
        )
    return out


def set_hyperparameter(opt_state: OptState, name: str, value: float | Array) -> OptState:
    """Return ``opt_state`` with every hyperparameter called ``name`` set to ``value``.

    Works on any state built by :mod:`jaxnet.optim` (including ``chain`` and ``switch``
    states: all hyperparameters of that name change). The new value keeps the stored dtype
    and shape, so a compiled step given the new state does not recompile. To change only one
    of several of the same name, rebuild that state with
    ``s._replace(hyper=s.hyper.replace(name, value))``.

    Raises:
      ValueError: if no hyperparameter ``name`` is stored, if it is driven by a schedule, if
        the value is not a scalar, or if a concrete ``value`` is out of range (e.g. a
        negative learning rate).
    """
    lo_hi = _RANGES.get(name)
    if not _is_tracer(value):
        if lo_hi is not None:
            check_hyperparameter(
                "set_hyperparameter", name, value, low=lo_hi[0], high=lo_hi[1], high_open=name != "dampening"
            )
        elif name not in ("switched",):
            arr = np.asarray(value)
            if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                raise ValueError(f"set_hyperparameter: {name} must be finite, got {value!r}")

    def new(old):
        v = jnp.asarray(value, dtype=jnp.asarray(old).dtype)
        if v.shape != jnp.shape(old):
            raise ValueError(f"set_hyperparameter: {name} must have shape {jnp.shape(old)}, got {v.shape}")
        return v

    return replace_hyperparameter(opt_state, name, new, owner="set_hyperparameter")


def hyperparameters(opt_state: OptState) -> dict:
    """The stored hyperparameters of a state, name -> value (the first of each name).

    Scheduled hyperparameters (no stored value) and absent ones are left out.
    """
    out: dict = {}

    def visit(nt):
        hp = getattr(nt, "hyper", None)
        if isinstance(hp, Hyperparameters):
            for f in hp.names:
                out.setdefault(f, hp[f])
            return nt
        for f in nt._fields:
            v = getattr(nt, f)
            if f in _HYPER_FIELDS and f not in out and hasattr(v, "shape"):
                out[f] = v
        return nt

    _walk(opt_state, visit)
    return out


_HYPER_FIELDS = frozenset(_RANGES) | {"initial_accumulator_value"}
