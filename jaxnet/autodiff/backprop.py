"""The chapter's backprop (§4.2.3), written by hand in matrix form over a batch.

The forward pass runs the model layer by layer and keeps what the backward pass needs
(each ``Dense`` layer's input ``a^(l-1)``, each activation's pre-activation ``z^(l)``).
The backward pass starts from ``dL/da^(L)``, the loss's derivative with respect to the
model's output, and walks the layers in reverse. For ``Dense`` followed by an activation
``sigma`` it is exactly the chapter's recursion, with ``delta^(l) = sigma'(z^(l)) * dL/da^(l)``:

    dL/dW^(l) = a^(l-1)^T delta^(l)          (the batch sum of a_k^(l-1) sigma'(z_j^(l)) dL/da_j^(l))
    dL/db^(l) = sum over the batch of delta^(l)
    dL/da^(l-1) = delta^(l) W^(l)^T           (the sum over the next layer's neurons j)

The chapter averages per-sample gradients with ``1/n``; here that factor lives in
``dL/da^(L)``, because every jaxnet loss is a batch mean (or a ``where``-weighted mean).

Nothing here calls ``jax.grad`` or ``jax.vjp``: each layer kind has a forward rule and a
backward rule written from its formula, using the derivative functions of
:mod:`jaxnet.nn.activations`. Values at kinks (documented and tested):

* ``relu'(0) = 0``, ``leaky_relu'(0) = prelu'(0) = alpha``, ``step' = 0``, ``elu'(0) = alpha``.
* L1's subgradient is ``sign(w)`` with ``sign(0) = 0`` (the element of ``[-1, 1]`` of least norm).
* ``binary_cross_entropy`` clips probabilities to ``[tiny, 1]``; at exactly a clip bound the
  derivative through the clip is 1/2 (the midpoint of its subdifferential, as ``jax.grad`` gives).
* ``binary_cross_entropy_with_logits`` is smooth; its derivative is ``sigmoid(z) - y`` everywhere,
  ``z = 0`` included (``jax.grad`` of the loss's max/abs formula gives ``-y`` at exactly 0).

Supported layer kinds: ``serial`` (nested too), ``dense``, ``flatten``, ``activation``
(every function of :data:`~jaxnet.nn.activations.ELEMENTWISE`), ``prelu``, ``elu`` (learned
alpha), ``softmax``, ``log_softmax``, ``batchnorm`` (train and eval mode) and ``dropout``
(its mask recomputed from the key ``serial`` gives the layer).
Also, from :mod:`jaxnet.autodiff.layer_rules`: ``layernorm``, ``rmsnorm``, ``embedding``,
``reshape``, ``parallel``, ``fanout``, ``fanin_sum``, ``fanin_concat`` and ``residual``; from
:mod:`jaxnet.autodiff.conv_rules`: ``conv``, ``conv_transpose`` and the four pools; and from
:mod:`jaxnet.autodiff.seq_rules`: ``multi_head_attention`` (causal, padding and context masks,
grouped-query heads, RoPE, cross-attention, attention dropout), ``learned_positions``,
``sinusoidal_positions``, ``rnn`` over each of ``simple_rnn_cell``, ``lstm_cell`` and ``gru_cell``
(backpropagation through time as a reverse scan; masks, ``reverse``, ``return_sequences``,
``return_state`` and an initial carry), ``bidirectional``, ``transformer_block`` and ``transformer_lm``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxnet.autodiff import penalties as P
from jaxnet.autodiff.conv_rules import CONV_RULES
from jaxnet.nn import activations as A
from jaxnet.nn import losses as L
from jaxnet.nn.combinators import layer_keys
from jaxnet.nn.core import mask_after
from jaxnet.types import Array, Layer, Params, State


class Rule(NamedTuple):
    """A layer kind's hand-written rules.

    ``forward(layer, params, state, x, key, train) -> (y, new_state, saved)`` and
    ``backward(layer, params, saved, g) -> (dL/dx, dL/dparams)`` with ``g = dL/dy``.
    """

    forward: Callable
    backward: Callable


def _apply(layer, params, state, x, key, train, mask=None):
    y, new_state = layer.apply(params, state, x, key=key, train=train, mask=mask)
    return y, new_state


# --- serial -----------------------------------------------------------------------------


def _serial_forward(layer, params, state, x, key, train, mask=None):
    keys = layer_keys(layer.layers)
    saved, new_state = [], {}
    for i, (k, sub) in enumerate(zip(keys, layer.layers, strict=True)):
        sub_key = jax.random.fold_in(key, i) if (key is not None and sub.needs_key) else None
        y, new_state[k], s = _forward(sub, params[k], state[k], x, sub_key, train, mask)
        mask, x = mask_after(mask, x, y), y  # as serial: the token mask outlives the time axis as [batch]
        saved.append(s)
    return x, new_state, saved


def _serial_backward(layer, params, saved, g):
    keys = layer_keys(layer.layers)
    grads = {}
    for k, sub, s in reversed(list(zip(keys, layer.layers, saved, strict=True))):
        g, grads[k] = _backward(sub, params[k], s, g)
    return g, grads


# --- dense and flatten ------------------------------------------------------------------


def _keep_input(layer, params, state, x, key, train, mask=None):
    y, new_state = _apply(layer, params, state, x, key, train, mask)
    return y, new_state, x


def _dense_backward(layer, params, x, g):
    # delta = dL/dz of this layer's output; rows are (batch x leading axes) samples.
    w = params["w"]
    x2 = x.reshape(-1, w.shape[0])
    g2 = g.reshape(-1, w.shape[1])
    grads = {"w": x2.T @ g2}
    if "b" in params:
        grads["b"] = jnp.sum(g2, axis=0)
    return g @ w.T, grads


def _flatten_backward(layer, params, x, g):
    return g.reshape(x.shape), {}


# --- activations ------------------------------------------------------------------------


def _hyper(layer):
    return {k: v for k, v in layer.config.items() if k != "fn"}


def _activation_backward(layer, params, z, g):
    act = A.get_activation(layer.config["fn"])
    return g * act.derivative(z, **_hyper(layer)).astype(g.dtype), {}


def _learned_alpha_backward(derivative, alpha_derivative):
    def backward(layer, params, z, g):
        alpha = params["alpha"].astype(z.dtype)
        dalpha = jnp.sum(g * alpha_derivative(z, alpha))
        return g * derivative(z, alpha), {"alpha": dalpha.reshape(params["alpha"].shape)}

    return backward


def _softmax_forward(layer, params, state, x, key, train, mask=None):
    y, new_state = _apply(layer, params, state, x, key, train, mask)
    return y, new_state, y


def _softmax_backward(layer, params, y, g):
    return A.softmax_vjp(y, g, axis=-1), {}


def _log_softmax_backward(layer, params, z, g):
    return A.log_softmax_vjp(z, g, axis=-1), {}


# --- batch normalization and dropout ------------------------------------------------------


def _bn_axes(layer, x):
    channel = layer.config.get("axis", -1) % x.ndim
    reduce = tuple(i for i in range(x.ndim) if i != channel)
    bshape = tuple(x.shape[i] if i == channel else 1 for i in range(x.ndim))
    return reduce, bshape


def _bn_forward(layer, params, state, x, key, train, mask=None):
    y, new_state = _apply(layer, params, state, x, key, train, mask)
    return y, new_state, (x, state, train, mask)


def _bn_backward(layer, params, saved, g):
    x, state, train, mask = saved
    eps = layer.config["eps"]
    reduce, bshape = _bn_axes(layer, x)
    gamma = params["gamma"].astype(g.dtype).reshape(bshape) if "gamma" in params else 1.0
    # W: each value's weight (1 without a mask; the mask's weights broadcast over the other axes)
    if mask is None:
        w = jnp.ones_like(x)
    else:
        w = jnp.asarray(mask).astype(x.dtype)
        w = jnp.broadcast_to(w.reshape(w.shape + (1,) * (x.ndim - w.ndim)), x.shape)
    total = jnp.sum(w, axis=reduce, keepdims=True)
    total = jnp.where(total > 0, total, 1)
    if train:
        mean = jnp.sum(w * x, axis=reduce, keepdims=True) / total
        var = jnp.sum(w * (x - mean) ** 2, axis=reduce, keepdims=True) / total
    else:
        mean = state["mean"].astype(x.dtype).reshape(bshape)
        var = state["var"].astype(x.dtype).reshape(bshape)
    inv_std = 1.0 / jnp.sqrt(var + eps)
    xhat = (x - mean) * inv_std
    grads = {}
    if "gamma" in params:
        grads["gamma"] = jnp.sum(g * xhat, axis=reduce).reshape(params["gamma"].shape)
    if "beta" in params:
        grads["beta"] = jnp.sum(g, axis=reduce).reshape(params["beta"].shape)
    dxhat = g * gamma
    if not train:  # running statistics are constants
        return dxhat * inv_std, grads
    # The batch statistics depend on every real sample, weighted by W (S = sum W):
    # dx_i = (dxhat_i - (W_i/S) sum_j dxhat_j - (W_i/S) xhat_i sum_j dxhat_j xhat_j) / std;
    # without a mask the sums over S are the means of the unweighted rule.
    c = w / total
    dx = inv_std * (
        dxhat
        - c * jnp.sum(dxhat, axis=reduce, keepdims=True)
        - c * xhat * jnp.sum(dxhat * xhat, axis=reduce, keepdims=True)
    )
    return dx, grads


def _dropout_forward(layer, params, state, x, key, train, mask=None):
    y, new_state = _apply(layer, params, state, x, key, train, mask)
    rate, mode = layer.config["rate"], layer.config["mode"]
    if train:
        if rate == 0:
            scale = jnp.ones_like(y)
        elif rate == 1:
            scale = jnp.zeros_like(y)
        else:
            from jaxnet.nn.dropout import dropout_mask  # the mask Dropout.apply drew with this same key

            mask = dropout_mask(key, rate, x.shape).astype(y.dtype)
            scale = mask * jnp.asarray(1.0 / (1.0 - rate), y.dtype) if mode == "inverted" else mask
    else:
        scale = jnp.ones_like(y) if mode == "inverted" else jnp.full_like(y, 1.0 - rate)
    return y, new_state, scale


def _dropout_backward(layer, params, scale, g):
    return g * scale, {}


#: The handwritten rule (forward keep, backward) of each layer kind that :func:`backprop` knows.
RULES: dict[str, Rule] = {
    "serial": Rule(_serial_forward, _serial_backward),
    "dense": Rule(_keep_input, _dense_backward),
    "flatten": Rule(_keep_input, _flatten_backward),
    "activation": Rule(_keep_input, _activation_backward),
    "prelu": Rule(_keep_input, _learned_alpha_backward(A.prelu_derivative, A.prelu_alpha_derivative)),
    "elu": Rule(_keep_input, _learned_alpha_backward(A.elu_derivative, A.elu_alpha_derivative)),
    "softmax": Rule(_softmax_forward, _softmax_backward),
    "log_softmax": Rule(_keep_input, _log_softmax_backward),
    "batchnorm": Rule(_bn_forward, _bn_backward),
    "dropout": Rule(_dropout_forward, _dropout_backward),
}
"""Hand-written forward/backward rules by layer kind."""
RULES.update({kind: Rule(*rule) for kind, rule in CONV_RULES.items()})  # conv, conv_transpose and the pools


def _forward(layer, params, state, x, key, train, mask=None):
    return RULES[layer.kind].forward(layer, params, state, x, key, train, mask)


def _backward(layer, params, saved, g):
    return RULES[layer.kind].backward(layer, params, saved, g)


# The norms, Embedding, Reshape and the branching combinators; their rules call _forward/_backward above.
from jaxnet.autodiff.layer_rules import layer_rules  # noqa: E402

RULES.update(layer_rules())

# Attention, positions, the recurrent cells and RNN through time, Bidirectional and the transformers.
from jaxnet.autodiff.seq_rules import seq_rules  # noqa: E402

RULES.update(seq_rules())


def check_supported(model: Layer, *, where: str = "backprop") -> None:
    """Raise ``ValueError`` naming the first layer (and its position) that has no handwritten rule."""

    def visit(layer, path):
        if not isinstance(layer, Layer):
            raise TypeError(f"{where}: expected a Layer, got {type(layer).__name__}")
        if layer.kind not in RULES:
            raise ValueError(
                f"{where}: no handwritten backprop for layer {layer.name} (kind {layer.kind!r}) at {path}; "
                f"supported kinds: {sorted(RULES)}. Use jax.grad for this model"
            )
        if layer.kind == "activation" and layer.config.get("fn") not in A.ELEMENTWISE:
            raise ValueError(
                f"{where}: layer {layer.name} at {path} names unknown activation {layer.config.get('fn')!r}"
            )
        for k, sub in zip(layer_keys(layer.layers), layer.layers, strict=True):
            visit(sub, f"{path}/{k}")

    visit(model, "model")


# --- losses -----------------------------------------------------------------------------


def _sample_weights(per_sample_shape, where, dtype):
    """``c_i`` with ``L = sum_i c_i l_i``: ``1/n``, or ``where_i / sum where`` (0 when every weight is 0)."""
    if where is None:
        n = 1
        for s in per_sample_shape:
            n *= s
        return jnp.full(per_sample_shape, 1.0 / n, dtype)
    w = jnp.asarray(where).astype(dtype)
    total = jnp.sum(w)
    return w / jnp.where(total > 0, total, 1)  # all weights 0: the loss is 0, and so is its gradient


def _expand(c, ndim):
    return c.reshape(c.shape + (1,) * (ndim - c.ndim))


def _binary_targets(out, targets):
    targets = jnp.asarray(targets)
    if targets.ndim == out.ndim - 1 and out.shape[-1] == 1:
        targets = targets[..., None]
    return targets.astype(out.dtype)


def _dlog_clip(q, tiny):
    """``d/dq log(clip(q, tiny, 1))``, with 1/2 through the clip at exactly a bound."""
    through = jnp.where((q > tiny) & (q < 1), 1.0, jnp.where((q == tiny) | (q == 1), 0.5, 0.0))
    return through.astype(q.dtype) / jnp.clip(q, tiny, 1.0)


def loss_gradient(
    loss: str | Callable[..., Array], outputs: Array, targets: Array, where: Array | None = None
) -> Array:
    """``dL/d outputs`` for a loss of :data:`jaxnet.nn.losses.LOSSES`, written by hand.

    Args:
      loss: the loss's name or the function itself.
      outputs, targets, where: as the loss takes them (shapes are checked by the loss).

    Returns:
      An array of ``outputs``' shape.

    Raises:
      ValueError: for a loss without a handwritten gradient.
    """
    name = loss_name(loss)
    out = outputs
    if name in ("squared_error", "mean_squared_error"):
        y = jnp.asarray(targets, out.dtype)
        c = _sample_weights(out.shape[:1] if out.ndim > 1 else out.shape, where, out.dtype)
        features = 1
        if name == "mean_squared_error" and out.ndim > 1:
            for s in out.shape[1:]:
                features *= s
        return _expand(c, out.ndim) * 2.0 * (out - y) / features
    if name == "binary_cross_entropy":
        y = _binary_targets(out, targets)
        c = _sample_weights(out.shape[:1] if out.ndim > 1 else out.shape, where, out.dtype)
        tiny = jnp.finfo(out.dtype).tiny
        dl = -(y * _dlog_clip(out, tiny) - (1 - y) * _dlog_clip(1.0 - out, tiny))
        return _expand(c, out.ndim) * dl
    if name == "binary_cross_entropy_with_logits":
        y = _binary_targets(out, targets)
        c = _sample_weights(out.shape[:1] if out.ndim > 1 else out.shape, where, out.dtype)
        return _expand(c, out.ndim) * (A.sigmoid(out) - y)
    if name == "softmax_cross_entropy":
        y = jnp.asarray(targets, out.dtype)
        c = _sample_weights(out.shape[:-1], where, out.dtype)[..., None]
        return c * (A.softmax(out, axis=-1) * jnp.sum(y, axis=-1, keepdims=True) - y)
    # softmax_cross_entropy_with_integer_labels
    c = _sample_weights(out.shape[:-1], where, out.dtype)[..., None]
    onehot = jax.nn.one_hot(jnp.asarray(targets), out.shape[-1], dtype=out.dtype)
    return c * (A.softmax(out, axis=-1) - onehot)


def loss_name(loss: str | Callable[..., Array]) -> str:
    """The name of a loss of :data:`jaxnet.nn.losses.LOSSES`, given its name or the function."""
    if isinstance(loss, str) and loss in L.LOSSES:
        return loss
    for name, fn in L.LOSSES.items():
        if loss is fn:
            return name
    raise ValueError(
        f"backprop: no handwritten gradient for loss {getattr(loss, '__name__', loss)!r}; "
        f"expected one of {sorted(L.LOSSES)} (by name or as the function from jaxnet.nn.losses)"
    )


# --- the whole model --------------------------------------------------------------------


def backprop(
    model: Layer,
    params: Params,
    state: State,
    x: Array,
    y: Array,
    loss: str | Callable[..., Array],
    *,
    where: Array | None = None,
    penalties: Sequence = (),
    key: Array | None = None,
    train: bool = True,
    mask: Array | None = None,
) -> tuple[Array, Params]:
    """The loss and its gradient with respect to ``params``, by the handwritten chain rule.

    ``L(params) = loss(model(params, x), y, where) + sum of penalties``. The same numbers as
    ``jax.value_and_grad`` of that function (see :func:`jaxnet.autodiff.check_grads`), computed
    without any automatic differentiation.

    Args:
      model: a layer or ``serial`` model of supported kinds (see :data:`RULES`).
      params, state: the model's params and state (from ``model.init``).
      x: an input batch.
      y: the targets the loss expects.
      loss: a loss of :data:`jaxnet.nn.losses.LOSSES`, by name or as the function.
      where: optional per-sample weights or mask, as the losses take it.
      penalties: a sequence of ``(kind, lam)`` or ``(kind, lam, mask)`` with ``kind`` ``"l2"``
        (``lam/2 sum w^2``) or ``"l1"`` (``lam sum |w|``); ``mask`` as in
        :func:`jaxnet.optim.l2_penalty` (``None`` means every parameter).
      key: PRNG key for stochastic layers (Dropout) in training mode; ``serial`` gives layer
        ``i`` the key ``fold_in(key, i)``, exactly as ``model.apply`` does.
      train: the mode the model runs in (batch statistics and dropout when ``True``).
      mask: the sample mask ``[batch]`` or token mask ``[batch, time]`` given to the model
        (``model.apply(..., mask=mask)``): BatchNorm takes its batch statistics from the real
        samples only; attention never attends padded keys, an RNN keeps its carry over padded
        steps. The training step passes its ``where`` here; pass the same array as ``where`` to
        match it (a ``[batch, time]`` ``where`` weights per-token losses such as
        ``softmax_cross_entropy_with_integer_labels`` on ``[batch, time, classes]`` logits).

    Returns:
      ``(loss_value, grads)`` with ``grads`` shaped like ``params``.

    Raises:
      ValueError: for a layer kind or loss with no handwritten rule (naming the layer), or a bad penalty.
    """
    check_supported(model)
    name = loss_name(loss)
    specs = P.parse_penalties(penalties, where="backprop")
    out, _, saved = _forward(model, params, state, x, key, train, mask)
    value = L.LOSSES[name](out, y, where)
    g = loss_gradient(name, out, y, where)
    _, grads = _backward(model, params, saved, g)
    grads = jax.tree_util.tree_map(lambda gr, p: jnp.asarray(gr).astype(jnp.asarray(p).dtype), grads, params)
    if specs:
        value = value + P.penalties_value(params, specs)
        grads = jax.tree_util.tree_map(jnp.add, grads, P.penalties_gradient(params, specs))
    return value, grads


def backprop_grad(
    model: Layer, params: Params, state: State, x: Array, y: Array, loss: str | Callable[..., Array], **kwargs: Any
) -> Any:
    """Only the gradient of :func:`backprop`."""
    return backprop(model, params, state, x, y, loss, **kwargs)[1]
