"""Activations as layers (``Relu()``, ``PRelu()``, ...); the functions live in
:mod:`jaxnet.nn.activations`.

Every activation layer has ``kind="activation"`` and ``config["fn"]`` naming the
function in :data:`jaxnet.nn.activations.ELEMENTWISE` (plus its fixed hyperparameters),
except the ones with learned parameters (``kind="prelu"``, ``kind="elu"`` with
``learnable=True``) and the softmax family (``kind="softmax"``/``"log_softmax"``).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from jaxnet.nn import activations as A
from jaxnet.nn.core import check_real, make_layer
from jaxnet.types import Layer


def _same_shape_init(key, input_shape):
    return input_shape, {}, {}


def _elementwise(name: str, fn_name: str, scope=None, **hyper) -> Layer:
    act = A.get_activation(fn_name)

    def apply(params, state, x, *, key, train):
        return act.fn(x, **hyper), state

    return make_layer(name, _same_shape_init, apply, kind="activation", config={"fn": fn_name, **hyper}, scope=scope)


def Sigmoid(*, name: str | None = None) -> Layer:
    """``1 / (1 + e^-z)`` elementwise."""
    return _elementwise("Sigmoid()", "sigmoid", name)


def Tanh(*, name: str | None = None) -> Layer:
    """``tanh(z)`` elementwise."""
    return _elementwise("Tanh()", "tanh", name)


def Relu(*, name: str | None = None) -> Layer:
    """``max(0, z)`` elementwise; its derivative at 0 is taken as 0."""
    return _elementwise("Relu()", "relu", name)


def LeakyRelu(alpha: float = 0.01, *, name: str | None = None) -> Layer:
    """``z`` for ``z > 0``, ``alpha z`` otherwise; the chapter's alpha is 0.01."""
    alpha = check_real("LeakyRelu", "alpha", alpha)
    return _elementwise(f"LeakyRelu(alpha={alpha:g})", "leaky_relu", name, alpha=alpha)


def Step(*, name: str | None = None) -> Layer:
    """The 0/1 threshold ``1{z > 0}`` (the chapter's XOR "sign"); no gradient flows through it."""
    return _elementwise("Step()", "step", name)


def Identity(*, name: str | None = None) -> Layer:
    """Pass the input through unchanged."""
    return _elementwise("Identity()", "identity", name)


def Gelu(approximate: bool = False, *, name: str | None = None) -> Layer:
    """GELU ``z Phi(z)`` elementwise: exact (erf) by default, the tanh form with ``approximate=True``.

    See :func:`jaxnet.nn.activations.gelu` for both formulas.
    """
    if not isinstance(approximate, bool):
        raise TypeError(f"Gelu: approximate must be a bool (False: erf form, True: tanh form), got {approximate!r}")
    shown = "Gelu(approximate=True)" if approximate else "Gelu()"
    return _elementwise(shown, "gelu", name, approximate=approximate)


def Silu(*, name: str | None = None) -> Layer:
    """SiLU (Swish) ``z sigmoid(z)`` elementwise."""
    return _elementwise("Silu()", "silu", name)


def Softplus(*, name: str | None = None) -> Layer:
    """Softplus ``log(1 + e^z)`` elementwise, a smooth ReLU."""
    return _elementwise("Softplus()", "softplus", name)


def PRelu(alpha_init: float = 0.25, *, name: str | None = None, dtype=jnp.float32) -> Layer:
    """Parametric ReLU with a learned slope: ``z`` for ``z > 0``, ``alpha z`` otherwise.

    Params: ``{"alpha": scalar}`` of ``dtype``, initialised to ``alpha_init`` (0.25, as in He et al. 2015).
    """
    alpha_init = check_real("PRelu", "alpha_init", alpha_init)
    scope, name = name, f"PRelu(alpha_init={alpha_init:g})"

    def init(key, input_shape):
        return input_shape, {"alpha": jnp.asarray(alpha_init, dtype)}, {}

    def apply(params, state, x, *, key, train):
        return A.prelu(x, params["alpha"].astype(x.dtype)), state

    return make_layer(name, init, apply, kind="prelu", config={"alpha_init": alpha_init}, scope=scope)


def Elu(alpha: float = 1.0, learnable: bool = False, *, name: str | None = None, dtype=jnp.float32) -> Layer:
    """Exponential linear unit: ``z`` for ``z > 0``, ``alpha (e^z - 1)`` otherwise.

    Most libraries fix ``alpha``; the chapter learns it. ``learnable=True`` makes
    ``alpha`` a parameter (``{"alpha": scalar}`` of ``dtype``) initialised to ``alpha``.
    """
    alpha = check_real("Elu", "alpha", alpha)
    if not isinstance(learnable, bool):
        raise TypeError(f"Elu: learnable must be a bool, got {learnable!r}")
    if not learnable:
        return _elementwise(f"Elu(alpha={alpha:g})", "elu", name, alpha=alpha)
    scope, name = name, f"Elu(alpha={alpha:g}, learnable=True)"

    def init(key, input_shape):
        return input_shape, {"alpha": jnp.asarray(alpha, dtype)}, {}

    def apply(params, state, x, *, key, train):
        return A.elu(x, params["alpha"].astype(x.dtype)), state

    return make_layer(name, init, apply, kind="elu", config={"alpha_init": alpha}, scope=scope)


def Softmax(*, name: str | None = None) -> Layer:
    """``softmax`` over the last axis: outputs are positive and sum to 1."""

    def apply(params, state, x, *, key, train):
        return A.softmax(x, axis=-1), state

    return make_layer("Softmax()", _same_shape_init, apply, kind="softmax", scope=name)


def LogSoftmax(*, name: str | None = None) -> Layer:
    """``log_softmax`` over the last axis (stable for large logits)."""

    def apply(params, state, x, *, key, train):
        return A.log_softmax(x, axis=-1), state

    return make_layer("LogSoftmax()", _same_shape_init, apply, kind="log_softmax", scope=name)


_BY_NAME = {
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "relu": Relu,
    "leaky_relu": LeakyRelu,
    "prelu": PRelu,
    "elu": Elu,
    "step": Step,
    "identity": Identity,
    "softmax": Softmax,
    "log_softmax": LogSoftmax,
    "gelu": Gelu,
    "gelu_tanh": lambda **kw: Gelu(approximate=True, **kw),
    "silu": Silu,
    "swish": Silu,
    "softplus": Softplus,
}
_WITH_DTYPE = ("prelu",)  # factories whose params take a dtype


def activation_layer(spec: str | Layer, *, where: str = "activation", dtype=None) -> Layer:
    """An activation layer from a name (``"relu"``), a :class:`Layer`, or a zero-argument
    factory returning one (``Relu``); ``dtype``, when given, is the params' dtype of a
    named activation with params (``"prelu"``)."""
    if isinstance(spec, Layer):
        return spec
    if isinstance(spec, str):
        try:
            factory: Any = _BY_NAME[spec]
            return factory(dtype=dtype) if dtype is not None and spec in _WITH_DTYPE else factory()
        except KeyError:
            raise ValueError(f"{where}: unknown activation {spec!r}; expected one of {sorted(_BY_NAME)}") from None
    if callable(spec):
        layer = spec()
        if isinstance(layer, Layer):
            return layer
    raise TypeError(f"{where}: expected an activation name, a Layer or a Layer factory, got {spec!r}")
