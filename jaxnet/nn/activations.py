"""Activation functions and their derivatives, written by hand.

Each elementwise activation ``f`` comes with ``f_derivative(z)``, the derivative
``df/dz`` evaluated at the pre-activation ``z``; the handwritten backprop in
:mod:`jaxnet.autodiff` multiplies by it. At kinks the derivative takes one value
of the subdifferential, fixed here and tested:

* ``relu'(0) = 0`` (the indicator ``1{z > 0}``), as ``jax.grad`` also gives.
* ``leaky_relu'(0) = alpha`` and ``prelu'(0) = alpha`` (the left slope).
* ``step'(z) = 0`` everywhere (the derivative almost everywhere; none exists at 0).
* ``elu'(0) = alpha`` (continuous when ``alpha = 1``).

GELU, SiLU and Softplus are smooth, so their derivatives have no such choice.

Softmax is not elementwise: :func:`softmax_vjp` and :func:`log_softmax_vjp` give the
vector-Jacobian products that backprop needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxnet.types import Array


def sigmoid(z: Array) -> Array:
    """``1 / (1 + exp(-z))``, computed without overflow."""
    return jax.nn.sigmoid(z)


def sigmoid_derivative(z: Array) -> Array:
    """``sigmoid(z) * (1 - sigmoid(z))``."""
    s = jax.nn.sigmoid(z)
    return s * (1 - s)


def tanh(z: Array) -> Array:
    """``(e^z - e^-z) / (e^z + e^-z)``."""
    return jnp.tanh(z)


def tanh_derivative(z: Array) -> Array:
    """``1 - tanh(z)^2``."""
    t = jnp.tanh(z)
    return 1 - t * t


def relu(z: Array) -> Array:
    """``max(0, z)``, written so that ``jax.grad`` also gives 0 at ``z = 0``."""
    return jnp.where(z > 0, z, jnp.zeros_like(z))


def relu_derivative(z: Array) -> Array:
    """``1{z > 0}``; the value at 0 is 0."""
    return (z > 0).astype(z.dtype)


def leaky_relu(z: Array, alpha: float | Array = 0.01) -> Array:
    """``z`` for ``z > 0``, ``alpha * z`` otherwise (the chapter's Leaky ReLU with alpha = 0.01)."""
    return jnp.where(z > 0, z, alpha * z)


def leaky_relu_derivative(z: Array, alpha: float | Array = 0.01) -> Array:
    """``1`` for ``z > 0``, ``alpha`` otherwise (``alpha`` at 0)."""
    return jnp.where(z > 0, jnp.ones_like(z), alpha * jnp.ones_like(z))


def prelu(z: Array, alpha: float | Array) -> Array:
    """Parametric ReLU: ``z`` for ``z > 0``, ``alpha * z`` otherwise, with ``alpha`` learned.

    The chapter writes ``max(alpha z, z)``, which is the same function while ``alpha <= 1``;
    this form stays a ReLU-like unit for any learned ``alpha``.
    """
    return jnp.where(z > 0, z, alpha * z)


def prelu_derivative(z: Array, alpha: float | Array) -> Array:
    """``d prelu / dz``: ``1`` for ``z > 0``, ``alpha`` otherwise."""
    return jnp.where(z > 0, jnp.ones_like(z), alpha * jnp.ones_like(z))


def prelu_alpha_derivative(z: Array, alpha: float | Array) -> Array:
    """``d prelu / d alpha`` elementwise: ``0`` for ``z > 0``, ``z`` otherwise."""
    del alpha
    return jnp.where(z > 0, jnp.zeros_like(z), z)


def elu(z: Array, alpha: float | Array = 1.0) -> Array:
    """``z`` for ``z > 0``, ``alpha (e^z - 1)`` otherwise."""
    return jnp.where(z > 0, z, alpha * jnp.expm1(jnp.minimum(z, 0)))


def elu_derivative(z: Array, alpha: float | Array = 1.0) -> Array:
    """``d elu / dz``: ``1`` for ``z > 0``, ``alpha e^z`` otherwise."""
    return jnp.where(z > 0, jnp.ones_like(z), alpha * jnp.exp(jnp.minimum(z, 0)))


def elu_alpha_derivative(z: Array, alpha: float | Array = 1.0) -> Array:
    """``d elu / d alpha`` elementwise: ``0`` for ``z > 0``, ``e^z - 1`` otherwise."""
    del alpha
    return jnp.where(z > 0, jnp.zeros_like(z), jnp.expm1(jnp.minimum(z, 0)))


def step(z: Array) -> Array:
    """The 0/1 threshold ``1{z > 0}`` (the chapter's XOR network calls it "sign")."""
    z = jnp.asarray(z)
    return (z > 0).astype(z.dtype if jnp.issubdtype(z.dtype, jnp.floating) else jnp.float32)


def step_derivative(z: Array) -> Array:
    """Zero everywhere: the step is flat almost everywhere, so no gradient flows through it."""
    return jnp.zeros_like(z)


def identity(z: Array) -> Array:
    """``z``."""
    return jnp.asarray(z)


def identity_derivative(z: Array) -> Array:
    """``1``."""
    return jnp.ones_like(z)


_SQRT_2_OVER_PI = 0.7978845608028654  # sqrt(2 / pi), the tanh form's constant
_GELU_CUBIC = 0.044715
_INV_SQRT_2 = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327  # 1 / sqrt(2 pi), the standard normal density at 0


def gelu(z, approximate=False):
    """Gaussian error linear unit (Hendrycks & Gimpel 2016): ``z Phi(z)``.

    Exact form (``approximate=False``, PyTorch's default): ``Phi(z) = erfc(-z / sqrt 2) / 2``
    (``= (1 + erf(z / sqrt 2)) / 2``, written with ``erfc`` so that negative ``z`` keeps its digits).
    Tanh form (``approximate=True``, PyTorch's ``approximate="tanh"`` and ``jax.nn.gelu``'s default):
    ``z/2 (1 + tanh(u))`` with ``u = sqrt(2/pi) (z + 0.044715 z^3)``, computed as ``z sigmoid(2u)``.
    """
    if approximate:
        u = _SQRT_2_OVER_PI * (z + _GELU_CUBIC * z * z * z)
        return z * jax.nn.sigmoid(2 * u)
    return 0.5 * z * jax.lax.erfc(-z * _INV_SQRT_2)


def gelu_derivative(z, approximate=False):
    """``d gelu / dz``: ``Phi(z) + z phi(z)`` (exact), with ``phi`` the standard normal density;
    for the tanh form ``s + 2 z s (1 - s) u'`` with ``s = sigmoid(2u)`` and ``u' = sqrt(2/pi) (1 + 3 * 0.044715 z^2)``
    (the same as ``(1 + t)/2 + z/2 (1 - t^2) u'`` with ``t = tanh(u)``)."""
    if approximate:
        s = jax.nn.sigmoid(2 * _SQRT_2_OVER_PI * (z + _GELU_CUBIC * z * z * z))
        du = _SQRT_2_OVER_PI * (1 + 3 * _GELU_CUBIC * z * z)
        return s + 2 * z * s * (1 - s) * du
    return 0.5 * jax.lax.erfc(-z * _INV_SQRT_2) + z * _INV_SQRT_2PI * jnp.exp(-0.5 * z * z)


def silu(z):
    """Sigmoid linear unit, also called Swish (with beta = 1): ``z sigmoid(z)``."""
    return z * jax.nn.sigmoid(z)


def silu_derivative(z):
    """``d silu / dz = s (1 + z (1 - s))`` with ``s = sigmoid(z)``."""
    s = jax.nn.sigmoid(z)
    return s * (1 + z * (1 - s))


def softplus(z):
    """``log(1 + e^z)``, computed as ``logaddexp(z, 0)`` so that large ``|z|`` neither overflows nor loses digits."""
    return jnp.logaddexp(z, jnp.zeros_like(z))


def softplus_derivative(z):
    """``d softplus / dz = sigmoid(z)``."""
    return jax.nn.sigmoid(z)


def softmax(z: Array, axis: int = -1) -> Array:
    """``exp(z_i - max z) / sum_j exp(z_j - max z)`` along ``axis``."""
    return jax.nn.softmax(z, axis=axis)


def log_softmax(z: Array, axis: int = -1) -> Array:
    """``z_i - logsumexp(z)`` along ``axis``, stable for large ``|z|``."""
    return jax.nn.log_softmax(z, axis=axis)


def softmax_vjp(y: Array, g: Array, axis: int = -1) -> Array:
    """Backprop through ``y = softmax(z)``: ``dL/dz = y * (g - sum(g * y))`` with ``g = dL/dy``."""
    y, g = jnp.asarray(y), jnp.asarray(g)
    return y * (g - jnp.sum(g * y, axis=axis, keepdims=True))


def log_softmax_vjp(z: Array, g: Array, axis: int = -1) -> Array:
    """Backprop through ``log_softmax(z)``: ``dL/dz = g - softmax(z) * sum(g)``."""
    g = jnp.asarray(g)
    return g - jax.nn.softmax(z, axis=axis) * jnp.sum(g, axis=axis, keepdims=True)


class Activation(NamedTuple):
    """An elementwise activation with its hand-written derivative.

    ``fn(z, **hyper)`` and ``derivative(z, **hyper)``; ``hyper`` names the
    hyperparameters it accepts with their defaults.
    """

    name: str
    fn: Callable
    derivative: Callable
    hyper: dict


ELEMENTWISE = {
    "sigmoid": Activation("sigmoid", sigmoid, sigmoid_derivative, {}),
    "tanh": Activation("tanh", tanh, tanh_derivative, {}),
    "relu": Activation("relu", relu, relu_derivative, {}),
    "leaky_relu": Activation("leaky_relu", leaky_relu, leaky_relu_derivative, {"alpha": 0.01}),
    "elu": Activation("elu", elu, elu_derivative, {"alpha": 1.0}),
    "step": Activation("step", step, step_derivative, {}),
    "identity": Activation("identity", identity, identity_derivative, {}),
    "gelu": Activation("gelu", gelu, gelu_derivative, {"approximate": False}),
    "silu": Activation("silu", silu, silu_derivative, {}),
    "softplus": Activation("softplus", softplus, softplus_derivative, {}),
}
"""Elementwise activations with fixed hyperparameters, by name."""


def get_activation(name: str) -> Activation:
    """Look up an elementwise activation by name; raises ``ValueError`` listing the known names."""
    try:
        return ELEMENTWISE[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ELEMENTWISE)}") from None
