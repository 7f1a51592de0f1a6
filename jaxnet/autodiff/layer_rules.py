"""Handwritten backprop rules for the layers beyond the MLP: norms, embeddings, shapes and branching.

Registered into :data:`jaxnet.autodiff.backprop.RULES` by kind; like the rules there, each is
written from the layer's formula, without ``jax.grad`` or ``jax.vjp``. The new activations
(GELU, SiLU, Softplus) need no rule of their own: they are ``kind="activation"`` layers, and the
activation rule multiplies by their derivative functions in :mod:`jaxnet.nn.activations`.

The formulas, with ``g = dL/dy`` and ``N`` the number of values one statistic averages:

* LayerNorm, ``xhat = (x - mu) r``, ``r = 1/sqrt(s2 + eps)``, ``d = g gamma``:
  ``dx = r (d - mean(d) - xhat mean(d xhat))``, ``dgamma = sum_batch g xhat``, ``dbeta = sum_batch g``.
* RMSNorm, ``xhat = x r``, ``r = 1/sqrt(mean(x^2) + eps)``: ``dx = r (d - xhat mean(d xhat))``.
* Embedding: ``dW[i] = sum of g over the positions whose id is i`` (a scatter-add); the ids
  get no gradient.
* Reshape: ``dx = g`` reshaped back. FanOut: ``dx = sum of the branch gradients``. FanInSum:
  every branch gets ``g``. FanInConcat: ``g`` split along the axis. parallel: each branch's rule on
  its own gradient. residual: ``dx = g + dblock(g)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnet.autodiff import backprop as B
from jaxnet.nn.combinators import layer_keys


def _sub_key(key, i, sub):
    return jax.random.fold_in(key, i) if (key is not None and sub.needs_key) else None


def _keep_input(layer, params, state, x, key, train, mask=None):
    y, new_state = layer.apply(params, state, x, key=key, train=train, mask=mask)
    return y, new_state, x


# --- LayerNorm and RMSNorm -----------------------------------------------------------------


def _norm_geometry(layer, x):
    axis = layer.config["axis"]
    axes = tuple(sorted(a % x.ndim for a in axis))
    bshape = tuple(x.shape[i] if i in axes else 1 for i in range(x.ndim))
    batch_axes = tuple(i for i in range(x.ndim) if i not in axes)
    return axes, bshape, batch_axes


def _norm_backward(layer, params, x, g):
    centre = layer.kind == "layernorm"
    axes, bshape, batch_axes = _norm_geometry(layer, x)
    x = x.astype(g.dtype)
    xc = x - jnp.mean(x, axis=axes, keepdims=True) if centre else x
    r = 1.0 / jnp.sqrt(jnp.mean(xc * xc, axis=axes, keepdims=True) + layer.config["eps"])
    xhat = xc * r
    grads = {}
    d = g
    if "gamma" in params:
        grads["gamma"] = jnp.sum(g * xhat, axis=batch_axes).reshape(params["gamma"].shape)
        d = g * params["gamma"].astype(g.dtype).reshape(bshape)
    if "beta" in params:
        grads["beta"] = jnp.sum(g, axis=batch_axes).reshape(params["beta"].shape)
    proj = xhat * jnp.mean(d * xhat, axis=axes, keepdims=True)
    dx = r * (d - jnp.mean(d, axis=axes, keepdims=True) - proj) if centre else r * (d - proj)
    return dx, grads


# --- Embedding ------------------------------------------------------------------------------


def _embedding_backward(layer, params, ids, g):
    table = params["embedding"]
    n, f = table.shape
    valid = ((ids >= 0) & (ids < n)).reshape(-1)
    rows = jnp.where(valid[:, None], g.reshape(-1, f), jnp.zeros((), g.dtype))
    dw = jnp.zeros(table.shape, g.dtype).at[jnp.clip(ids.reshape(-1), 0, n - 1)].add(rows)
    return jnp.zeros(ids.shape, g.dtype), {"embedding": dw}


# --- shapes and branching -------------------------------------------------------------------


def _reshape_backward(layer, params, x, g):
    return g.reshape(x.shape), {}


def _fanout_backward(layer, params, x, g):
    total = g[0]
    for gi in g[1:]:
        total = total + gi
    return total, {}


def _fanin_sum_forward(layer, params, state, x, key, train, mask=None):
    y, new_state = layer.apply(params, state, x, key=key, train=train, mask=mask)
    return y, new_state, len(x)


def _fanin_sum_backward(layer, params, n, g):
    return (g,) * n, {}


def _fanin_concat_forward(layer, params, state, x, key, train, mask=None):
    y, new_state = layer.apply(params, state, x, key=key, train=train, mask=mask)
    ax = layer.config["axis"] % y.ndim
    return y, new_state, (ax, [xi.shape[ax] for xi in x])


def _fanin_concat_backward(layer, params, saved, g):
    ax, sizes = saved
    out, start = [], 0
    for s in sizes:
        out.append(jax.lax.slice_in_dim(g, start, start + s, axis=ax))
        start += s
    return tuple(out), {}


def _parallel_forward(layer, params, state, x, key, train, mask=None):
    keys = layer_keys(layer.layers)
    ys, new_state, saved = [], {}, []
    for i, (k, sub, xi) in enumerate(zip(keys, layer.layers, x, strict=True)):
        y, new_state[k], s = B._forward(sub, params[k], state[k], xi, _sub_key(key, i, sub), train, mask)
        ys.append(y)
        saved.append(s)
    return tuple(ys), new_state, saved


def _parallel_backward(layer, params, saved, g):
    keys = layer_keys(layer.layers)
    dxs, grads = [], {}
    for k, sub, s, gi in zip(keys, layer.layers, saved, g, strict=True):
        dx, grads[k] = B._backward(sub, params[k], s, gi)
        dxs.append(dx)
    return tuple(dxs), grads


def _residual_forward(layer, params, state, x, key, train, mask=None):
    (k,) = layer_keys(layer.layers)
    (block,) = layer.layers
    fx, new, saved = B._forward(block, params[k], state[k], x, _sub_key(key, 0, block), train, mask)
    return x + fx, {k: new}, saved


def _residual_backward(layer, params, saved, g):
    (k,) = layer_keys(layer.layers)
    dx, grads = B._backward(layer.layers[0], params[k], saved, g)
    return g + dx, {k: grads}


def layer_rules() -> dict:
    """The rules of this module by layer kind, as :class:`~jaxnet.autodiff.backprop.Rule` values."""
    return {
        "layernorm": B.Rule(_keep_input, _norm_backward),
        "rmsnorm": B.Rule(_keep_input, _norm_backward),
        "embedding": B.Rule(_keep_input, _embedding_backward),
        "reshape": B.Rule(_keep_input, _reshape_backward),
        "fanout": B.Rule(_keep_input, _fanout_backward),
        "fanin_sum": B.Rule(_fanin_sum_forward, _fanin_sum_backward),
        "fanin_concat": B.Rule(_fanin_concat_forward, _fanin_concat_backward),
        "parallel": B.Rule(_parallel_forward, _parallel_backward),
        "residual": B.Rule(_residual_forward, _residual_backward),
    }
