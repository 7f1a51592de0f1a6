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
