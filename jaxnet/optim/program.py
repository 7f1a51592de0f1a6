"""Program keys: when two optimizer objects are the same compiled program.

jaxnet's optimizers keep every numeric hyperparameter in their state (see
:mod:`jaxnet.optim.hyperparams`), so ``adam(1e-3)`` and ``adam(3e-4)`` run the same code on
different inputs. Each constructor tags its ``update`` with a *program key*: the constructor's
name plus the options that change the code (``amsgrad``, ``nesterov``, a schedule, a mask,
the keys of inner transforms). :func:`program_ref` wraps an optimizer so that it hashes and
compares by that key; ``fit`` passes it to ``jax.jit`` as a static argument, so a loop
``for lr in lrs: fit(model, loss, adam(lr), ...)`` compiles once and keeps one program.

An object without a key (an optax transform, a hand-written ``Optimizer``) compares by the
identity of its ``init`` and ``update`` functions: reuse the object to reuse its program.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import jax
import numpy as np

_ATTR = "jaxnet_program_key"


def with_program_key(update: Callable, *key: Hashable) -> Callable:
    """Tag ``update`` with ``key`` (the constructor's name and code-changing options); return it.

    The key must determine everything ``update`` does apart from what it reads from its
    arguments: two updates with equal keys must compute the same function.
    """
    setattr(update, _ATTR, key)
    return update


def program_key(optimizer) -> Hashable | None:
    """The program key of an optimizer (anything with ``update``), or ``None`` when it has none."""
    return getattr(getattr(optimizer, "update", None), _ATTR, None)


def static_key(value) -> Hashable:
    """A hashable stand-in for an option: schedules and functions by identity, bool pytrees by value.

    Masks given as pytrees of bools (dicts are not hashable) become their tree structure and
    leaves; anything already hashable is used as it is.
    """
    if value is None or isinstance(value, (bool, int, float, str, np.bool_)):
        return value
    if callable(value):
        return ("fn", id(value), value)  # the object itself keeps the id from being reused
    leaves, treedef = jax.tree_util.tree_flatten(value)
    try:
        return ("tree", treedef, tuple(bool(x) if isinstance(x, (bool, np.bool_)) else x for x in leaves))
    except TypeError:
        return ("obj", id(value), value)


def inner_key(*optimizers) -> Hashable | None:
    """The keys of inner transforms, or ``None`` (compare by identity) if any of them has none."""
    keys = tuple(program_key(o) for o in optimizers)
    return None if any(k is None for k in keys) else keys


class ProgramRef:
    """An optimizer as a static ``jax.jit`` argument: equal when the program keys are equal.

    Without a key, equal when ``init`` and ``update`` are the same function objects.
    ``obj`` is the optimizer (the first one seen is the one the compiled program was traced with).
    """

    __slots__ = ("_key", "obj")

    def __init__(self, obj):
        self.obj = obj
        key = program_key(obj)
        if key is None:
            key = ("identity", id(getattr(obj, "init", obj)), id(getattr(obj, "update", obj)))
        self._key: Any = key

    def __hash__(self):
        return hash(self._key)

    def __eq__(self, other):
        if not isinstance(other, ProgramRef):
            return False
        if self._key[0] == "identity" or other._key[0] == "identity":
            return getattr(self.obj, "init", self.obj) is getattr(other.obj, "init", other.obj) and getattr(
                self.obj, "update", self.obj
            ) is getattr(other.obj, "update", other.obj)
        return self._key == other._key

    def __repr__(self):
        return f"ProgramRef({self._key!r})"


def program_ref(optimizer) -> ProgramRef:
    """Wrap ``optimizer`` for use as a static ``jax.jit`` argument (see :class:`ProgramRef`)."""
    return ProgramRef(optimizer)


def schedule_key(spec) -> Hashable | None:
    """A hyperparameter's part of a program key: the schedule (by identity), or ``None`` for a stored value."""
    return static_key(spec) if callable(spec) and not hasattr(spec, "shape") else None
