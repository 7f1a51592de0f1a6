"""Dropout (§4.4.3): drop each unit with probability ``rate`` in training.

Two forms with the same expected output, both from the same keep-mask
``mask ~ Bernoulli(1 - rate)`` (one draw per element of the input):

=============  =============================  =========================
mode           training                        evaluation
=============  =============================  =========================
``inverted``   ``y = x * mask / (1 - rate)``   ``y = x``
``chapter``    ``y = x * mask``                ``y = x * (1 - rate)``
=============  =============================  =========================

``inverted`` (the default, as in PyTorch and Keras) does the rescaling in training, so
evaluation is free; ``chapter`` is the textbook's form, which instead scales by the keep
probability at test time (the same as scaling the next layer's weights). In both,
``E[train output] = eval output``.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from jaxnet import _threefry as threefry
from jaxnet.nn.core import check_real, make_layer
from jaxnet.types import Array, Layer, check_key

MODES = ("inverted", "chapter")


def dropout_mask(key: Array, rate: float, shape: Sequence[int]) -> jax.Array:
    """The keep-mask: a bool array of ``shape``, each element ``True`` (kept) with probability ``1 - rate``.

    ``Dropout.apply`` draws its mask with exactly this call and the key it receives, so
    the same key rebuilds the same mask (the handwritten backprop relies on it). The mask is
    ``jax.random.bernoulli(key, 1 - rate, shape)`` bit for bit, computed with the threefry hash
    written out (``jaxnet._threefry.bernoulli``), which XLA fuses on the CPU where jax's runs a loop.

    Raises:
      ValueError: for ``rate`` outside ``[0, 1]``.
    """
    check_key("dropout_mask", key)
    rate = check_real("dropout_mask", "rate", rate, low=0.0, high=1.0)
    return threefry.bernoulli(key, 1.0 - rate, tuple(shape))  # jax.random.bernoulli's mask, bit for bit


def Dropout(rate: float, mode: str = "inverted", *, name: str | None = None) -> Layer:
    """Dropout: zero each element with probability ``rate`` in training (see the module table).

    Needs a key when ``train=True``; inside ``serial`` it gets its own,
    ``fold_in(key, position)``, so two dropout layers never share a mask.
    ``rate=0`` is the identity; ``rate=1`` outputs zeros (with zero, finite, gradients).

    Args:
      rate: probability of dropping an element, in ``[0, 1]`` (not the keep probability).
      mode: ``"inverted"`` (scale by ``1/(1 - rate)`` in training) or ``"chapter"``
        (scale by ``1 - rate`` in evaluation).
      name: the key ``serial`` files it under (default ``dropout_<position>``).

    Raises:
      ValueError: for ``rate`` outside ``[0, 1]`` or an unknown ``mode``; at apply time,
        for ``train=True`` without a ``key``.
    """
    if isinstance(rate, (str, bool)):
        raise TypeError(f"Dropout: rate must be a real number in [0, 1], got {rate!r}")
    rate = check_real("Dropout", "rate", rate, low=0.0, high=1.0)
    if mode not in MODES:
        raise ValueError(f"Dropout: mode must be one of {list(MODES)}, got {mode!r}")
    scope, name = name, f"Dropout({rate:g})" if mode == "inverted" else f"Dropout({rate:g}, mode='chapter')"
    keep = 1.0 - rate

    def init(key, input_shape):
        return input_shape, {}, {}

    def apply(params, state, x, *, key, train):
        x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            x = x.astype(jnp.float32)  # scaling by 1/(1 - rate) would truncate integers
        if not train:
            return (x if mode == "inverted" else x * jnp.asarray(keep, x.dtype)), state
        if key is None:
            raise ValueError(
                f"{name}.apply: train=True needs a random key for the dropout mask; "
                "pass key=jax.random.PRNGKey(...) (a fresh one every step)"
            )
        if rate == 0.0:
            return x, state
        if rate == 1.0:
            # Everything dropped; zeros_like keeps the gradient 0 rather than 0 * inf.
            return jnp.zeros_like(x), state
        mask = dropout_mask(key, rate, x.shape)
        scale = 1.0 / keep if mode == "inverted" else 1.0
        return jnp.where(mask, x * jnp.asarray(scale, x.dtype), jnp.zeros((), x.dtype)), state

    return make_layer(
        name, init, apply, kind="dropout", config={"rate": rate, "mode": mode}, needs_key=True, scope=scope
    )
