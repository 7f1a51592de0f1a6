"""Shared types: the `Layer` and `Optimizer` protocols and the pytree aliases.

A layer is a pair of pure functions::

    init(key, input_shape) -> (output_shape, params, state)
    apply(params, state, x, *, key=None, train, mask=None) -> (y, new_state)

Shapes include the leading batch dimension; it may be ``-1`` ("any batch size").
``train`` is keyword-only and has no default: forgetting it is an error. ``mask`` is
``None`` or weights over the leading axes of ``x`` (``[batch]``: which samples are real;
``[batch, time]``: which tokens are real); a layer whose output depends on other samples or
tokens uses the real ones only, every other layer ignores it.

An optimizer is a pair of pure functions::

    init(params) -> opt_state
    update(grads, opt_state, params=None) -> (updates, new_opt_state)

and ``apply_updates(params, updates)`` adds the updates; the minus sign of gradient
descent lives inside the optimizers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax

Array = jax.Array
PRNGKey = jax.Array
Key = PRNGKey
Params = Any  # a pytree of arrays, usually nested dicts
State = Any  # a pytree of arrays (running statistics); {} for stateless layers
OptState = Any
Shape = tuple[int, ...]


class Layer(NamedTuple):
    """A layer: ``init``/``apply`` plus a description the library can read.

    Attributes:
      init: ``init(key, input_shape) -> (output_shape, params, state)``.
      apply: ``apply(params, state, x, *, key=None, train, mask=None) -> (y, new_state)``.
      name: human-readable name used in error messages, e.g. ``"Dense(128)"``.
      kind: machine-readable kind (``"dense"``, ``"activation"``, ``"serial"``, ...);
        the handwritten backprop in :mod:`jaxnet.autodiff` dispatches on it.
      config: the layer's hyperparameters as a read-only mapping.
      layers: sublayers, for combinators such as ``serial``.
      needs_key: whether ``apply`` needs a PRNG key when ``train=True``.
      scope: the key under which ``serial`` and the other combinators file this layer's
        params and state, set by the constructor's ``name=``; ``None`` (the default) means
        kind and position (``"dense_0"``).
    """

    init: Callable
    apply: Callable
    name: str = "Layer"
    kind: str = "custom"
    config: Mapping[str, Any] = {}
    layers: tuple[Layer, ...] = ()
    needs_key: bool = False
    scope: str | None = None

    def __repr__(self) -> str:
        return self.name


class Optimizer(NamedTuple):
    """A gradient transformation: ``init(params) -> state`` and
    ``update(grads, state, params=None) -> (updates, state)``."""

    init: Callable
    update: Callable


# Words of a raw (uint32) key for jax's built-in implementations (jax_default_prng_impl).
_RAW_KEY_WORDS = {"threefry2x32": 2, "rbg": 4, "unsafe_rbg": 4}


def check_key(where: str, key, name: str = "key"):
    """Check a ``jax.random`` key and return it unchanged.

    Both kinds work: a typed key (``jax.random.key(0)``, any implementation: dtype
    ``key<impl>``, shape ``()``) and a legacy raw key (``jax.random.PRNGKey(0)``: a
    ``uint32`` vector, ``(2,)`` for the default threefry implementation, ``(4,)`` for rbg).
    Traced keys are checked by dtype and shape only.

    Raises:
      TypeError: for ``None``, a Python number, a non-key dtype (a float array), a batch of
        keys or a raw key whose length is not the default implementation's (``jax_default_prng_impl``),
        naming ``where`` and the argument.
    """
    hint = "a jax.random key, e.g. jax.random.key(0) or jax.random.PRNGKey(0)"
    if key is None:
        raise TypeError(f"{where}: {name} must be {hint}, got None")
    if isinstance(key, (bool, int, float)):
        fix = f"wrap it: jax.random.key({key!r})" if type(key) is int else "a seed is an int: jax.random.key(0)"
        raise TypeError(f"{where}: {name} must be {hint}, got the {type(key).__name__} {key!r}; {fix}")
    dtype, shape = getattr(key, "dtype", None), getattr(key, "shape", None)
    if dtype is None or shape is None:
        raise TypeError(f"{where}: {name} must be {hint}, got {type(key).__name__}")
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if tuple(shape) != ():
            raise TypeError(
                f"{where}: {name} must be one key, got a batch of keys of shape {tuple(shape)}; pick one (keys[0])"
            )
        return key
    if str(dtype) != "uint32":
        raise TypeError(f"{where}: {name} must be {hint}, got an array of dtype {dtype}")
    impl = str(jax.config.jax_default_prng_impl)  # type: ignore[attr-defined]
    words = _RAW_KEY_WORDS.get(impl)
    if len(shape) != 1 or shape[0] not in ((words,) if words else (2, 4)):
        what = "a batch of raw keys" if len(shape) == 2 and shape[-1] in (2, 4) else "a raw key"
        expected = f"({words},) for the default {impl} implementation" if words else "(2,) or (4,)"
        raise TypeError(
            f"{where}: {name} must be one key (a uint32 vector of shape {expected}, or a typed key), got {what} of "
            f"shape {tuple(shape)}"
        )
    return key
