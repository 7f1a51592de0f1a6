"""Combinators: ``serial`` chains layers; ``MLP`` and ``LogisticRegression`` build common models."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import jax

from jaxnet import _threefry as threefry
from jaxnet.nn.activation_layers import activation_layer
from jaxnet.nn.core import ParamsMismatchError, check_size, make_layer, mask_after
from jaxnet.nn.dense import Dense
from jaxnet.nn.dropout import Dropout
from jaxnet.nn.initializers import Initializer
from jaxnet.nn.normalization import BatchNorm
from jaxnet.types import Array, Layer, Params, State


def layer_keys(layers: Sequence[Layer]) -> tuple[str, ...]:
    """The dict keys ``serial`` files each sublayer's params and state under.

    A layer built with ``name=`` is filed under that name; the others under kind and
    position: ``"dense_0"``, ``"relu_1"``, ...

    Raises:
      ValueError: when two layers would share a key (two equal ``name=``, or a name that
        equals another layer's positional key).
    """
    keys = []
    for i, layer in enumerate(layers):
        if layer.scope is not None:
            keys.append(layer.scope)
            continue
        base = re.sub(r"[^0-9a-zA-Z]+", "", layer.name.split("(")[0]).lower() or "layer"
        keys.append(f"{base}_{i}")
    seen: dict[str, int] = {}
    for i, k in enumerate(keys):
        if k in seen:
            raise ValueError(
                f"layers {seen[k]} ({layers[seen[k]].name}) and {i} ({layers[i].name}) would both be filed "
                f"under {k!r}; give them different name= values"
            )
        seen[k] = i
    return tuple(keys)


def _check_tree_keys(name: str, what: str, tree, keys) -> None:
    if not isinstance(tree, dict) or set(tree) != set(keys):
        got = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
        missing = [k for k in keys if not isinstance(tree, dict) or k not in tree]
        extra = sorted(set(tree) - set(keys)) if isinstance(tree, dict) else []
        detail = []
        if missing:
            detail.append(f"missing {missing}")
        if extra:
            detail.append(f"unexpected {extra}")
        raise ValueError(
            f"{name}: {what} do not match this model: expected keys {list(keys)}, got {got}"
            + (f" ({'; '.join(detail)})" if detail else "")
            + "; were they made by this model's init?"
        )


def _path(prefix: str, k) -> str:
    return f"{prefix}[{k!r}]"


def _first_mismatch(path: str, expected, got) -> str | None:
    """The first place where ``got`` differs from ``expected`` (a tree of shapes), as ``"path: ..."``."""
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"{path}: expected a dict with keys {sorted(expected)}, got {type(got).__name__}"
        if set(expected) != set(got):
            return f"{path}: expected keys {sorted(expected)}, got {sorted(got)}"
        for k in expected:
            found = _first_mismatch(_path(path, k), expected[k], got[k])
            if found:
                return found
        return None
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)) or len(got) != len(expected):
            return f"{path}: expected a sequence of {len(expected)} entries, got {got!r:.60}"
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            found = _first_mismatch(f"{path}[{i}]", e, g)
            if found:
                return found
        return None
    want, have = tuple(getattr(expected, "shape", ())), tuple(getattr(got, "shape", ()))
    if want != have:
        return f"{path}: expected shape {want}, got {have}"
    return None


def _diagnose(layer: Layer, k: str, params, state, x) -> str | None:
    """After ``layer`` failed on ``x``: name the params/state entry whose shape is not what
    ``layer.init`` makes for this input, or ``None`` when they all are (the error lies elsewhere).

    Runs only on failure, so models that work pay nothing for it.
    """
    shape = (-1, *x.shape[1:]) if getattr(x, "ndim", 0) >= 1 else None
    if shape is None:
        return None
    try:
        want_params, want_state = jax.eval_shape(lambda r: layer.init(r, shape)[1:], jax.random.PRNGKey(0))
    except Exception:  # the input itself does not suit this layer: no params/state verdict
        return None
    return _first_mismatch(_path("state", k), want_state, state) or _first_mismatch(
        _path("params", k), want_params, params
    )


def serial(*layers: Layer, name: str | None = None) -> Layer:
    """Chain layers: the output of each is the input of the next.

    Shapes chain through ``init``; params and state are dicts keyed by position and
    layer (``{"dense_0": {...}, "relu_1": {}, ...}``, see :func:`layer_keys`). In
    ``apply``, a layer that needs randomness gets ``jax.random.fold_in(key, i)`` for its
    position ``i``, so two stochastic layers never share a key; state flows in and out
    as one dict, and ``mask`` reaches every layer (see :class:`~jaxnet.types.Layer`); a
    ``[batch, time]`` mask becomes the ``[batch]`` mask of the samples with a real token after a
    layer that removes the time axis (``RNN(return_sequences=False)``, ``Flatten``; the rule
    of ``jaxnet.nn.core.mask_after``).
    ``name`` is the key an enclosing combinator files this model's params under.

    Raises:
      ValueError: for an empty ``serial()``; at apply time, for params/state whose
        keys are not this model's.
      TypeError: for an argument that is not a :class:`Layer`.
    """
    if not layers:
        raise ValueError("serial() needs at least one layer, got none")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            hint = "; call the constructor, e.g. Relu() rather than Relu" if callable(layer) else ""
            raise TypeError(f"serial(): argument {i} must be a Layer, got {layer!r}{hint}")
    keys = layer_keys(layers)
    scope, name = name, "serial(" + ", ".join(layer.name for layer in layers) + ")"
    short = f"serial({len(layers)} layers)"
    needs_key = any(layer.needs_key for layer in layers)

    def init(key, input_shape):
        params, state = {}, {}
        shape = input_shape
        for i, (k, layer) in enumerate(zip(keys, layers, strict=True)):
            try:
                shape, params[k], state[k] = layer.init(jax.random.fold_in(key, i), shape)
            except (ValueError, TypeError) as e:
                raise type(e)(f"{short}, layer {i} ({layer.name}): {e}") from None
        return shape, params, state

    def apply(params, state, x, *, key, train, mask):
        _check_tree_keys(short, "params", params, keys)
        _check_tree_keys(short, "state", state, keys)
        new_state = {}
        for i, (k, layer) in enumerate(zip(keys, layers, strict=True)):
            sub_key = threefry.fold_in(key, i) if (key is not None and layer.needs_key) else None
            try:
                y, new_state[k] = layer.apply(params[k], state[k], x, key=sub_key, train=train, mask=mask)
            except ParamsMismatchError:
                raise  # make_layer's check on this serial names the full path
            except (ValueError, TypeError, KeyError) as e:
                if getattr(e, "jaxnet_input_error", False):
                    raise  # the layer's own message says its input does not fit: that comes first
                mismatch = _diagnose(layer, k, params[k], state[k], x)
                if mismatch is None:
                    raise
                raise ValueError(
                    f"{short}, layer {i} ({layer.name}): {mismatch} (for an input of shape {tuple(x.shape)}); "
                    f"were params and state made by this model's init? [{type(e).__name__}: {e}]"
                ) from e
            mask = mask_after(mask, x, y)
            x = y
        return x, new_state

    return make_layer(name, init, apply, kind="serial", layers=layers, needs_key=needs_key, uses_mask=True, scope=scope)


def intermediates(
    model: Layer, params: Params, state: State, x: Array, *, key: Array | None = None, train: bool, mask: Any = None
) -> list[Array]:
    """Run a ``serial`` model layer by layer and return every layer's output.

    Returns a list ``[x, y_0, y_1, ..., y_last]`` (the input first). Useful for
    inspecting activations, and how the XOR network's table is produced.
    """
    if model.kind != "serial":
        raise ValueError(f"intermediates: expected a serial model, got {model.name}")
    keys = layer_keys(model.layers)
    outs = [x]
    for i, (k, layer) in enumerate(zip(keys, model.layers, strict=True)):
        sub_key = threefry.fold_in(key, i) if (key is not None and layer.needs_key) else None
        y, _ = layer.apply(params[k], state[k], x, key=sub_key, train=train, mask=mask)
        mask, x = mask_after(mask, x, y), y
        outs.append(x)
    return outs


def MLP(
    sizes: Sequence[int],
    activation: str | Layer = "relu",
    output_activation: str | Layer | None = None,
    *,
    w_init: str | Initializer = "lecun_normal",
    b_init: str | Initializer = "zeros",
    batchnorm: bool = False,
    dropout: float = 0.0,
    dtype=None,
    name: str | None = None,
    dropout_mode: str = "inverted",
) -> Layer:
    """A multilayer perceptron: ``Dense -> activation`` for every hidden size, then a ``Dense`` output.

    ``MLP([64, 64, 10])`` is ``serial(Dense(64), Relu(), Dense(64), Relu(), Dense(10))``:
    ``sizes`` lists the hidden widths and, last, the output width (the input width comes
    from ``init``'s ``input_shape``). One hidden layer is the chapter's
    ``y = f2(w2 f1(w1 x + b1) + b2)``; more sizes make it deep.

    Args:
      sizes: hidden and output widths, at least one.
      activation: hidden activation, by name (``"relu"``, ``"tanh"``, ``"prelu"``, ...)
        or as a layer factory; every hidden layer gets its own instance (own PReLU alpha).
      output_activation: optional activation after the last ``Dense`` (default none:
        the model outputs logits, which the losses expect).
      w_init, b_init: initializers of every ``Dense``.
      batchnorm: put a ``BatchNorm()`` after every hidden ``Dense``, before its activation.
      dropout: if positive, put a ``Dropout(dropout)`` after every hidden activation.
      dtype: dtype of every param (``Dense``, ``BatchNorm``, a named ``"prelu"``); default
        float32. With ``jax_enable_x64``, ``dtype=jnp.float64`` builds a float64 model.
      name: the key an enclosing combinator files the model's params under.
      dropout_mode: ``"inverted"`` (scale in training) or ``"chapter"`` (scale by the keep
        probability at test time), as for :func:`~jaxnet.nn.dropout.Dropout`.

    With both, a hidden block is ``Dense -> BatchNorm -> activation -> Dropout``.
    """
    if isinstance(sizes, int) or not isinstance(sizes, Sequence) or len(sizes) == 0:
        raise ValueError(f"MLP: sizes must be a non-empty sequence of positive ints, got {sizes!r}")
    sizes = [check_size("MLP", f"sizes[{i}]", s) for i, s in enumerate(sizes)]
    activation_layer(activation, where="MLP activation")  # fail early on a bad name
    if not isinstance(batchnorm, bool):
        raise TypeError(f"MLP: batchnorm must be a bool, got {batchnorm!r}")
    try:
        Dropout(dropout, dropout_mode)  # fail early, naming the bad rate or mode
    except (TypeError, ValueError) as e:
        raise type(e)(f"MLP dropout: {e}") from None
    typed = {} if dtype is None else {"dtype": dtype}
    layers = []
    for s in sizes[:-1]:
        layers.append(Dense(s, w_init, b_init, **typed))
        if batchnorm:
            layers.append(BatchNorm(**typed))
        layers.append(activation_layer(activation, where="MLP activation", dtype=dtype))
        if dropout:
            layers.append(Dropout(dropout, dropout_mode))
    layers.append(Dense(sizes[-1], w_init, b_init, **typed))
    if output_activation is not None:
        layers.append(activation_layer(output_activation, where="MLP output_activation", dtype=dtype))
    return serial(*layers, name=name)


def LogisticRegression(
    n_classes: int = 2, *, probabilities: bool = False, w_init: str | Initializer = "zeros"
) -> Layer:
    """Logistic regression: the one-layer network.

    Binary (``n_classes=2``): one ``Dense(1)`` unit giving the logit ``w^T x + b``, to be
    used with ``binary_cross_entropy_with_logits``; with ``probabilities=True`` a
    ``Sigmoid`` follows. Multiclass: ``Dense(n_classes)`` logits, or ``Softmax``
    probabilities (multinomial logistic regression). Weights start at zero, which is
    fine here: with no hidden layer there is no symmetry to break.
    """
    check_size("LogisticRegression", "n_classes", n_classes)
    if n_classes < 2:
        raise ValueError(f"LogisticRegression: n_classes must be >= 2, got {n_classes}")
    if n_classes == 2:
        layers = [Dense(1, w_init)] + (["sigmoid"] if probabilities else [])
    else:
        layers = [Dense(n_classes, w_init)] + (["softmax"] if probabilities else [])
    return serial(*[activation_layer(layer) if isinstance(layer, str) else layer for layer in layers])
