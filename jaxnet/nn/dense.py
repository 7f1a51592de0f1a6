"""Fully connected and reshaping layers."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from jaxnet.nn import initializers
from jaxnet.nn.core import check_size, make_layer
from jaxnet.nn.initializers import Initializer
from jaxnet.types import Layer


def Dense(
    n: int,
    w_init: str | Initializer = "lecun_normal",
    b_init: str | Initializer = "zeros",
    *,
    use_bias: bool = True,
    dtype: DTypeLike = jnp.float32,
    name: str | None = None,
) -> Layer:
    """A fully connected layer: ``y = x W + b``.

    This is the chapter's neuron ``f(w^T x + b)`` for ``n`` neurons at once, without
    the activation (add one as its own layer). ``W`` has shape ``[n_in, n]`` so that a
    batch ``x`` of shape ``[batch, n_in]`` maps to ``[batch, n]``; any leading axes are kept.

    Args:
      n: number of output features (neurons).
      w_init: initializer for ``W`` (a callable or a name such as ``"he_normal"``);
        default LeCun normal, ``N(0, 1/n_in)``, the chapter's std ``1/sqrt(n)`` rule.
      b_init: initializer for ``b``; default zeros.
      use_bias: whether to add ``b``.
      dtype: dtype of the parameters.
      name: the key ``serial`` files the params under (default ``dense_<position>``).

    Params: ``{"w": [n_in, n], "b": [n]}`` (no ``"b"`` when ``use_bias=False``).

    Raises:
      TypeError/ValueError: for a non-integer or non-positive ``n``; at apply time, for
        an input whose last axis differs from the one ``init`` saw.

    Example::

        out_shape, params, state = Dense(3).init(key, (-1, 4))   # out_shape == (-1, 3)
        y, _ = Dense(3).apply(params, state, x, train=False)
    """
    check_size("Dense", "n", n)
    scope, name = name, f"Dense({n})"
    w_init = initializers.get(w_init, where=f"{name} w_init")
    b_init = initializers.get(b_init, where=f"{name} b_init")

    def init(key, input_shape):
        n_in = input_shape[-1]
        if n_in == -1:
            raise ValueError(f"{name}.init: the last axis of input_shape must be known, got {input_shape}")
        kw, kb = jax.random.split(key)
        params = {"w": w_init(kw, (n_in, n), dtype)}
        if use_bias:
            params["b"] = b_init(kb, (n,), dtype)
        return (*input_shape[:-1], n), params, {}

    def apply(params, state, x, *, key, train):
        w = params["w"]
        if x.ndim < 1 or x.shape[-1] != w.shape[0]:
            raise ValueError(
                f"{name} expected input with last dimension {w.shape[0]}, got {tuple(x.shape)}"
                + ("; add Flatten() before it" if x.ndim > 2 and math.prod(x.shape[1:]) == w.shape[0] else "")
            )
        y = x @ w
        if use_bias:
            y = y + params["b"]
        return y, state

    return make_layer(name, init, apply, kind="dense", config={"n": n, "use_bias": use_bias}, scope=scope)


def Flatten(*, name: str | None = None) -> Layer:
    """Flatten the feature axes into one: ``[batch, d1, d2, ...] -> [batch, d1*d2*...]``.

    The first axis is the batch axis and is kept. Under ``jax.vmap`` map over an axis
    in front of the batch axis (as ensembles do), so that ``apply`` still sees a batch.
    """
    scope, name = name, "Flatten()"

    def init(key, input_shape):
        feat = input_shape[1:]
        if any(s == -1 for s in feat):
            raise ValueError(f"{name}.init: feature axes must be known, got {input_shape}")
        return (input_shape[0], math.prod(feat)), {}, {}

    def apply(params, state, x, *, key, train):
        if x.ndim < 1:
            raise ValueError(f"{name} expected an input with a batch axis, got a scalar")
        return x.reshape((*x.shape[:1], -1)), state

    return make_layer(name, init, apply, kind="flatten", scope=scope)
