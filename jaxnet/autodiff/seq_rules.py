"""Handwritten backprop for the sequence layers: attention, positions, recurrent cells through time, transformers.

Registered into :data:`jaxnet.autodiff.RULES` by kind, like :mod:`~jaxnet.autodiff.layer_rules`;
every rule is written from the layer's formula, without ``jax.grad``, ``jax.vjp`` or ``custom_vjp``.
With ``g = dL/dy``:

* **Attention** (:func:`dot_product_attention_backward`), ``S = q k^T * scale`` (masked entries and
  rows with nothing to attend have ``P = 0``), ``P = softmax(S)``, ``Pd = dropout(P)``, ``y = Pd v``::

      dv = Pd^T g;   dPd = g v^T;   dP = keep * dPd / (1 - rate)
      dS = P * (dP - sum_keys(dP * P))          (the softmax Jacobian, row by row)
      dq = scale * dS k;   dk = scale * dS^T q

  A masked entry has ``P = 0``, so ``dS = 0`` there; a fully masked row outputs zeros and passes no
  gradient. Grouped-query attention sums ``dk``/``dv`` over the query heads sharing a key/value head.
* **MultiHeadAttention**: the four projections are Dense layers (``dW = x^T d``, ``dx = d W^T``);
  RoPE is a rotation, so its backward pass is the rotation by the opposite angle
  (``apply_rope(d, -positions)``); with a context, ``x`` gets the query's gradient and the context the
  key's and value's (self-attention: their sum). Padded query positions (a ``[batch, time]`` mask)
  output zeros, so their gradient is dropped first.
* **LearnedPositions**: ``dx = g``, ``dP[t] = sum_batch g[:, t]`` (rows past ``time`` get 0).
  **SinusoidalPositions**: ``dx = g``.
* **RNN** (backpropagation through time): the forward scan keeps each step's input, carry and
  gates; the backward pass is a reverse ``lax.scan`` over them carrying ``dL/dcarry`` (and, for
  ``return_sequences=False``, the gradient of the running "last real output"), summing each step's
  parameter gradients. A masked step keeps its carry, so it passes ``dL/dcarry`` through unchanged
  and its cell gets no gradient. Per cell (``s = sigmoid``; a prime marks the step's new carry)::

      SimpleRNN: h' = act(a),  a = x Wi + h Wh + b;   da = dh' * act'(a)
      LSTM:      dc_tot = dc' + dh' o (1 - tanh(c')^2);  do = dh' tanh(c');  df = dc_tot c;
                 di = dc_tot g;  dg = dc_tot i;  dc = dc_tot f;
                 the gates' pre-activations through s' = s (1 - s) and tanh' = 1 - tanh^2
      GRU:       dn = dh' (1 - z);  dz = dh' (h - n);  dh = dh' z;  dn_pre = dn (1 - n^2);
                 dr = dn_pre u_n;  du_n = dn_pre r  (and d(a_r) = d(u_r), d(a_z) = d(u_z))

* **Bidirectional**: each direction's rule on its share of ``g`` (split for ``concat``, halves for
  ``mean``, times the other output for ``mul``); ``dx`` is the sum.
* **TransformerBlock** and **transformer_lm**: the chain of the rules above and of the norms,
  Dense, activation, Dropout and Embedding rules, with the same keys as ``apply``; a tied output
  projection ``logits = h E^T`` adds ``g^T h`` to the embedding's gradient.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxnet.nn.attention import _split_input, attention_weights
from jaxnet.nn.dropout import dropout_mask
from jaxnet.nn.positional import apply_rope
from jaxnet.nn.recurrent import gru_gates, lstm_gates, masked_step, scan_inputs
from jaxnet.types import Array

__all__ = ["dot_product_attention_backward", "dot_product_attention_forward"]

_FN = "dot_product_attention_forward"


# jaxnet.autodiff.backprop registers this module's rules as it loads, so it is imported only when a rule runs.
def _forward(layer, params, state, x, key, train, mask=None):
    from jaxnet.autodiff.backprop import _forward as forward

    return forward(layer, params, state, x, key, train, mask)


def _backward(layer, params, saved, g):
    from jaxnet.autodiff.backprop import _backward as backward

    return backward(layer, params, saved, g)


def _check_input(layer, params, state, x, key, train, mask):
    """Trace (without running) the layer's own ``apply``, so bad input raises the layer's own error."""
    jax.eval_shape(lambda p, s, x: layer.apply(p, s, x, key=key, train=train, mask=mask), params, state, x)


# --- the attention core --------------------------------------------------------------------------


def dot_product_attention_forward(
    query: Array,
    key: Array,
    value: Array,
    mask: Array | None = None,
    *,
    scale: float | None = None,
    is_causal: bool = False,
    dropout_rate: float = 0.0,
    dropout_key: Array | None = None,
) -> tuple[Array, tuple]:
    """:func:`jaxnet.nn.dot_product_attention` and what its handwritten backward pass needs.

    The same numbers as ``jaxnet.nn.dot_product_attention(query, key, value, mask=mask, ...)``
    (the weights come from :func:`jaxnet.nn.attention.attention_weights`, the dropout mask from
    :func:`jaxnet.nn.dropout.dropout_mask` with ``dropout_key``, as there).

    Args:
      query: ``[batch, q_time, heads, head_dim]``.
      key: ``[batch, k_time, kv_heads, head_dim]``, ``kv_heads`` a divisor of ``heads``.
      value: ``[batch, k_time, kv_heads, v_dim]``.
      mask: bools (True = attend) broadcastable to ``[batch, heads, q_time, k_time]``.
      scale: the logit scale; default ``1 / sqrt(head_dim)``.
      is_causal: query ``i`` attends keys ``0..i`` only.
      dropout_rate: attention-weight dropout rate in ``[0, 1)``; needs ``dropout_key`` when ``> 0``.
      dropout_key: the key of the dropout mask.

    Returns:
      ``(out, residuals)``: ``out`` of shape ``[batch, q_time, heads, v_dim]`` in ``query``'s dtype and
      the residuals to pass to :func:`dot_product_attention_backward`.

    Raises:
      ValueError: for inputs that are not 4-D, or dropout without a key (shape errors otherwise as
        :func:`jaxnet.nn.dot_product_attention`).
    """
    query, key, value = jnp.asarray(query), jnp.asarray(key), jnp.asarray(value)
    for nm, a in (("query", query), ("key", key), ("value", value)):
        if a.ndim != 4:
            raise ValueError(f"{_FN}: {nm} must be [batch, time, heads, head_dim], got shape {tuple(a.shape)}")
    b, _, n, h = query.shape
    s, k = key.shape[1], key.shape[2]
    if n % k:
        raise ValueError(f"{_FN}: the query's {n} heads must be a multiple of the key/value heads, got {k}")
    scale = 1.0 / math.sqrt(h) if scale is None else float(scale)
    p = attention_weights(query, key, None, mask, scale=scale, is_causal=is_causal)  # [b, n, t, s]
    keep = None
    pd = p
    if dropout_rate > 0.0:
        if dropout_key is None:
            raise ValueError(f"{_FN}: dropout_rate={dropout_rate:g} needs dropout_key=jax.random.PRNGKey(...)")
        keep = dropout_mask(dropout_key, dropout_rate, p.shape)
        pd = jnp.where(keep, p / (1.0 - dropout_rate), 0.0)
    ctype = p.dtype
    pd5 = pd.reshape(b, k, n // k, p.shape[2], s)
    out = jnp.einsum("bkgts,bskd->btkgd", pd5, value.astype(ctype))
    out = out.reshape(b, out.shape[1], n, value.shape[-1]).astype(query.dtype)
    return out, (query, key, value, p, pd, keep, scale, dropout_rate)


def dot_product_attention_backward(residuals: tuple, g: Array) -> tuple[Array, Array, Array]:
    """``(dL/dquery, dL/dkey, dL/dvalue)`` of :func:`dot_product_attention_forward`, given ``g = dL/dout``.

    Written from the formulas in this module's docstring (the softmax Jacobian applied row by row:
    ``dS = P * (dP - sum(dP * P))``), without automatic differentiation.

    Args:
      residuals: the second output of :func:`dot_product_attention_forward`.
      g: ``[batch, q_time, heads, v_dim]``.

    Returns:
      Arrays of the shapes and dtypes of ``query``, ``key`` and ``value``.
    """
    query, key, value, p, pd, keep, scale, rate = residuals
    b, t, n, h = query.shape
    s, k = key.shape[1], key.shape[2]
    grp = n // k
    ctype = p.dtype
    g5 = jnp.asarray(g).astype(ctype).reshape(b, t, k, grp, -1)
    v = value.astype(ctype)
    pd5 = pd.reshape(b, k, grp, t, s)
    dv = jnp.einsum("bkgts,btkgd->bskd", pd5, g5)
    dpd = jnp.einsum("btkgd,bskd->bkgts", g5, v)
    dp = dpd if keep is None else jnp.where(keep.reshape(dpd.shape), dpd / (1.0 - rate), 0.0)
    p5 = p.reshape(dp.shape)
    ds = p5 * (dp - jnp.sum(dp * p5, axis=-1, keepdims=True)) * jnp.asarray(scale, ctype)
    q5 = query.astype(ctype).reshape(b, t, k, grp, h)
    dq = jnp.einsum("bkgts,bskh->btkgh", ds, key.astype(ctype)).reshape(query.shape)
    dk = jnp.einsum("bkgts,btkgh->bskh", ds, q5)
    return dq.astype(query.dtype), dk.astype(key.dtype), dv.astype(value.dtype)


# --- MultiHeadAttention --------------------------------------------------------------------------


def _dense(p, x):
    y = x @ p["w"]
    return y + p["b"] if "b" in p else y


def _dense_back(p, x, d):
    """``(dx, {"w", "b"})`` of ``y = x W + b`` over any leading axes."""
    w = p["w"]
    grads = {"w": x.reshape(-1, w.shape[0]).T @ d.reshape(-1, w.shape[1])}
    if "b" in p:
        grads["b"] = jnp.sum(d.reshape(-1, w.shape[1]), axis=0)
    return d @ w.T, grads


def _mha_forward(layer, params, state, x, key, train, mask=None):
    _check_input(layer, params, state, x, key, train, mask)
    cfg = layer.config
    heads, kv_heads, rate = cfg["num_heads"], cfg["num_kv_heads"], cfg["dropout"]
    x_in = x
    x, context, context_mask = _split_input(layer.name, x)
    x = jnp.asarray(x)
    c = x if context is None else jnp.asarray(context)
    if x.ndim != 3 or c.ndim != 3:
        raise ValueError(f"{layer.name} expected x and context of shape [batch, time, features], got {x.shape}")
    hd = cfg["head_dim"] or x.shape[-1] // heads
    q = _dense(params["query"], x).reshape(*x.shape[:2], heads, hd)
    k = _dense(params["key"], c).reshape(*c.shape[:2], kv_heads, hd)
    v = _dense(params["value"], c).reshape(*c.shape[:2], kv_heads, hd)
    if cfg["rope"]:
        q = apply_rope(q, jnp.arange(x.shape[1]))
        k = apply_rope(k, jnp.arange(c.shape[1]))
    token_mask = None if (mask is None or jnp.ndim(mask) < 2) else jnp.asarray(mask) > 0
    key_mask = token_mask if context is None else None
    if context_mask is not None:
        key_mask = jnp.asarray(context_mask) > 0
    attn_mask = None if key_mask is None else key_mask[:, None, None, :]
    drop = train and rate > 0.0
    if drop and key is None:
        raise ValueError(f"{layer.name}.apply: train=True with dropout={rate:g} needs key=jax.random.PRNGKey(...)")
    heads_out, res = dot_product_attention_forward(
        q, k, v, attn_mask, is_causal=cfg["causal"], dropout_rate=rate if drop else 0.0, dropout_key=key
    )
    merged = heads_out.reshape(*heads_out.shape[:2], heads * hd)
    y = _dense(params["out"], merged)
    if token_mask is not None:
        y = jnp.where(token_mask[..., None], y, jnp.zeros((), y.dtype))
    return y, state, (x_in, x, c, context is not None, merged, res, token_mask)


def _mha_backward(layer, params, saved, g):
    x_in, x, c, cross, merged, res, token_mask = saved
    if token_mask is not None:
        g = jnp.where(token_mask[..., None], g, jnp.zeros((), g.dtype))
    grads = {}
    dmerged, grads["out"] = _dense_back(params["out"], merged, g)
    dq, dk, dv = dot_product_attention_backward(res, dmerged.reshape((*res[0].shape[:3], -1)))
    if layer.config["rope"]:  # a rotation by angle a: its transpose rotates by -a
        dq = apply_rope(dq, -jnp.arange(x.shape[1]))
        dk = apply_rope(dk, -jnp.arange(c.shape[1]))
    dx, grads["query"] = _dense_back(params["query"], x, dq.reshape(*dq.shape[:2], -1))
    dc_k, grads["key"] = _dense_back(params["key"], c, dk.reshape(*dk.shape[:2], -1))
    dc_v, grads["value"] = _dense_back(params["value"], c, dv.reshape(*dv.shape[:2], -1))
    dc = dc_k + dc_v
    grads = {nm: grads[nm] for nm in params}  # params' order
    if not cross:
        return dx + dc, grads
    rest = tuple(jnp.zeros(jnp.shape(a), g.dtype) for a in x_in[2:])  # a context mask gets no gradient
    return (dx, dc, *rest), grads


# --- positions -----------------------------------------------------------------------------------


def _learned_positions_backward(layer, params, x, g):
    table = params["embedding"]
    dtable = jnp.zeros(table.shape, g.dtype).at[: g.shape[1]].set(jnp.sum(g, axis=0))
    return g, {"embedding": dtable}


def _sinusoidal_backward(layer, params, x, g):
    return g, {}


# --- recurrent cells -----------------------------------------------------------------------------


def _sig_d(s):
    return s * (1.0 - s)


def _cell_step(cell, params, carry, x):
    """One step by hand: ``(new_carry, y, saved)``; ``carry`` is ``h`` or ``(h, c)``."""
    kind = cell.kind
    if kind == "simple_rnn_cell":
        a = x @ params["w_i"] + carry @ params["w_h"] + params["b"]
        h = jnp.tanh(a) if cell.config["activation"] == "tanh" else jnp.maximum(a, 0)
        return h, h, (x, carry, a, h)
    if kind == "lstm_cell":
        h0, c0 = carry
        h, c, gates = lstm_gates(params, x, h0, c0)
        return (h, c), h, (x, h0, c0, *gates)
    # gru_cell
    h, gates = gru_gates(params, x, carry)
    return h, h, (x, carry, *gates)


def _cell_step_back(cell, params, saved, d_new, dy):
    """``(d_carry, dx, dparams)`` of one step given ``dL/dnew_carry`` and ``dL/dy``."""
    kind = cell.kind
    if kind == "simple_rnn_cell":
        x, h0, a, h = saved
        dh = d_new + dy
        da = dh * (1.0 - h * h) if cell.config["activation"] == "tanh" else jnp.where(a > 0, dh, 0.0)
        grads = {"w_i": x.T @ da, "w_h": h0.T @ da, "b": jnp.sum(da, axis=0)}
        return da @ params["w_h"].T, da @ params["w_i"].T, grads
    if kind == "lstm_cell":
        x, h0, c0, i, f, gg, o, tc = saved
        dh, dc = d_new[0] + dy, d_new[1]
        dc_tot = dc + dh * o * (1.0 - tc * tc)
        da = jnp.concatenate(
            [dc_tot * gg * _sig_d(i), dc_tot * c0 * _sig_d(f), dc_tot * i * (1.0 - gg * gg), dh * tc * _sig_d(o)],
            axis=-1,
        )
        grads = {"w_i": x.T @ da, "w_h": h0.T @ da, "b": jnp.sum(da, axis=0)}
        return (da @ params["w_h"].T, dc_tot * f), da @ params["w_i"].T, grads
    x, h0, r, z, n, u_n = saved
    dh = d_new + dy
    dn = dh * (1.0 - z) * (1.0 - n * n)  # through tanh
    dz = dh * (h0 - n) * _sig_d(z)
    dr = dn * u_n * _sig_d(r)
    da = jnp.concatenate([dr, dz, dn], axis=-1)
    du = jnp.concatenate([dr, dz, dn * r], axis=-1)
    grads = {"w_i": x.T @ da, "w_h": h0.T @ du, "b_i": jnp.sum(da, axis=0), "b_h": jnp.sum(du, axis=0)}
    return dh * z + du @ params["w_h"].T, da @ params["w_i"].T, grads


def _cell_forward(layer, params, state, x, key, train, mask=None):
    y, new_state = layer.apply(params, state, x, key=key, train=train, mask=mask)  # checks the step
    carry, x_t = x
    carry = tuple(jnp.asarray(a) for a in carry) if isinstance(carry, (tuple, list)) else jnp.asarray(carry)
    _, _, saved = _cell_step(layer, params, carry, jnp.asarray(x_t))
    return y, new_state, saved


def _cell_backward(layer, params, saved, g):
    g_carry, g_y = g
    d_carry, dx, grads = _cell_step_back(layer, params, saved, g_carry, g_y)
    return (d_carry, dx), {nm: grads[nm] for nm in params}


def _rnn_forward(layer, params, state, x, key, train, mask=None):
    _check_input(layer, params, state, x, key, train, mask)
    (cell,) = layer.layers
    cfg = layer.config
    x_in = x
    x, carry0 = (x[0], x[1]) if isinstance(x, (tuple, list)) else (x, None)
    x = jnp.asarray(x)
    ctype, carry0, steps, real, y0 = scan_inputs(cell, params, x, carry0, mask)

    def step(loop, inputs):
        carry, last = loop
        x_t, m_t = inputs
        new, y, saved = _cell_step(cell, params, carry, x_t)
        new, y, last = masked_step(carry, last, new, y, m_t, ctype)
        return (new, last), (y, saved)

    (final, last), (ys, saved) = jax.lax.scan(
        step, (carry0, y0), (steps, real), reverse=cfg["reverse"], unroll=cfg["unroll"]
    )
    y = jnp.swapaxes(ys, 0, 1) if cfg["return_sequences"] else last
    out = (y, final) if cfg["return_state"] else y
    return out, state, (saved, real, x_in, x.dtype, ctype, carry0)


def _rnn_backward(layer, params, saved_all, g):
    (cell,) = layer.layers
    cfg = layer.config
    saved, real, x_in, x_dtype, ctype, carry0 = saved_all
    if cfg["return_state"]:
        g, g_final = g
    else:
        g_final = jax.tree.map(jnp.zeros_like, carry0)
    g = jnp.asarray(g).astype(ctype)
    if cfg["return_sequences"]:
        dys, d_last = jnp.swapaxes(g, 0, 1), jnp.zeros(g.shape[::2], ctype)
    else:
        dys, d_last = None, g
    zero_grads = {nm: jnp.zeros(jnp.shape(p), ctype) for nm, p in params.items()}

    def back(loop, inputs):
        d_new, d_last, acc = loop
        s, m_t, dy = inputs
        dy = jnp.zeros_like(d_last) if dy is None else dy
        if m_t is None:
            dy, d_last = dy + d_last, jnp.zeros_like(d_last)
            d_raw, d_pass = d_new, None
        else:
            keep = m_t[:, None]
            dy = jnp.where(keep, dy + d_last, 0.0)  # a masked step's output is 0 and leaves `last` alone
            d_last = jnp.where(keep, 0.0, d_last)
            d_raw = jax.tree.map(lambda a: jnp.where(keep, a, 0.0), d_new)
            d_pass = jax.tree.map(lambda a: jnp.where(keep, 0.0, a), d_new)  # a masked step keeps its carry
        d_carry, dx, grads = _cell_step_back(cell, params, s, d_raw, dy)
        if d_pass is not None:
            d_carry = jax.tree.map(jnp.add, d_carry, d_pass)
        acc = jax.tree.map(jnp.add, acc, {nm: grads[nm] for nm in acc})
        return (d_carry, d_last, acc), dx

    # The forward scan ran in direction `reverse`; the backward one runs the other way.
    (d_carry0, _, grads), dxs = jax.lax.scan(
        back,
        (jax.tree.map(lambda a: jnp.asarray(a).astype(ctype), g_final), d_last, zero_grads),
        (saved, real, dys),
        reverse=not cfg["reverse"],
        unroll=cfg["unroll"],
    )
    dx = jnp.swapaxes(dxs, 0, 1).astype(x_dtype)
    if isinstance(x_in, (tuple, list)):
        return (dx, d_carry0), grads
    return dx, grads


def _bidirectional_forward(layer, params, state, x, key, train, mask=None):
    _check_input(layer, params, state, x, key, train, mask)
    fwd, bwd = layer.layers
    yf, sf, savf = _rnn_forward(fwd, params["forward"], state["forward"], x, None, train, mask)
    yb, sb, savb = _rnn_forward(bwd, params["backward"], state["backward"], x, None, train, mask)
    merge = layer.config["merge"]
    if merge == "concat":
        y = jnp.concatenate([yf, yb], axis=-1)
    elif merge == "sum":
        y = yf + yb
    elif merge == "mean":
        y = (yf + yb) / 2
    else:
        y = yf * yb
    return y, {"forward": sf, "backward": sb}, (savf, savb, yf, yb)


def _bidirectional_backward(layer, params, saved, g):
    fwd, bwd = layer.layers
    savf, savb, yf, yb = saved
    merge = layer.config["merge"]
    if merge == "concat":
        gf, gb = g[..., : yf.shape[-1]], g[..., yf.shape[-1] :]
    elif merge == "sum":
        gf = gb = g
    elif merge == "mean":
        gf = gb = g / 2
    else:
        gf, gb = g * yb, g * yf
    dxf, pf = _rnn_backward(fwd, params["forward"], savf, gf)
    dxb, pb = _rnn_backward(bwd, params["backward"], savb, gb)
    return jax.tree.map(jnp.add, dxf, dxb), {"forward": pf, "backward": pb}


# --- transformers --------------------------------------------------------------------------------


def _fold(key, i):
    return None if key is None else jax.random.fold_in(key, i)


def _block_parts(cfg, features: int):
    """The sublayers ``TransformerBlock`` builds, rebuilt from its config (their params are the block's)."""
    from jaxnet.nn import Dense, Dropout, MultiHeadAttention
    from jaxnet.nn.activation_layers import activation_layer
    from jaxnet.nn.transformer import _NORMS

    rate = cfg["dropout"]
    attention = MultiHeadAttention(
        cfg["num_heads"], num_kv_heads=cfg["num_kv_heads"], causal=cfg["causal"], dropout=rate, rope=cfg["rope"]
    )
    norm = _NORMS[cfg["norm_kind"]]()
    return {
        "attention": attention,
        "drop": Dropout(rate),
        "act": activation_layer(cfg["activation"]),
        "norm": norm,
        "mlp_in": Dense(cfg["mlp_features"]),
        "mlp_out": Dense(features),
    }


def _block_forward(layer, params, state, x, key, train, mask=None):
    _check_input(layer, params, state, x, key, train, mask)
    x = jnp.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"{layer.name} expected input of shape [batch, time, features], got {tuple(x.shape)}")
    parts = _block_parts(layer.config, x.shape[-1])
    saved = {}

    def run(name, sub, p, u, k=None, m=None):
        out, _, saved[name] = _forward(sub, p, {}, u, k, train, m)
        return out

    def dropped(name, u, k):  # the block skips dropout at rate 0
        return u if layer.config["dropout"] == 0.0 else run(name, parts["drop"], {}, u, k)

    def attend(u, k):
        a = run("attention", parts["attention"], params["attention"], u, _fold(k, 0), mask)
        return dropped("drop_attention", a, _fold(k, 1))

    def mlp(u, k):
        h = run("mlp_in", parts["mlp_in"], params["mlp_in"], u)
        h = run("act", parts["act"], {}, h)
        h = run("mlp_out", parts["mlp_out"], params["mlp_out"], h)
        return dropped("drop_mlp", h, _fold(k, 2))

    k_attn, k_mlp = _fold(key, 0), _fold(key, 1)
    if layer.config["norm"] == "pre":
        h = x + attend(run("norm1", parts["norm"], params["norm1"], x), k_attn)
        y = h + mlp(run("norm2", parts["norm"], params["norm2"], h), k_mlp)
    else:
        h = run("norm1", parts["norm"], params["norm1"], x + attend(x, k_attn))
        y = run("norm2", parts["norm"], params["norm2"], h + mlp(h, k_mlp))
    token_mask = None
    if mask is not None and jnp.ndim(mask) == 2:
        token_mask = jnp.asarray(mask)[..., None] > 0
        y = jnp.where(token_mask, y, jnp.zeros((), y.dtype))
    return y, state, (parts, saved, token_mask)


def _block_backward(layer, params, saved_all, g):
    parts, saved, token_mask = saved_all
    grads = {}
    if token_mask is not None:
        g = jnp.where(token_mask, g, jnp.zeros((), g.dtype))

    def back(name, sub, p, d):
        dx, gr = _backward(sub, p, saved[name], d)
        if name in params:
            grads[name] = gr
        return dx

    def dropped_back(name, d):
        return d if layer.config["dropout"] == 0.0 else back(name, parts["drop"], {}, d)

    def attend_back(d):
        d = dropped_back("drop_attention", d)
        return back("attention", parts["attention"], params["attention"], d)

    def mlp_back(d):
        d = dropped_back("drop_mlp", d)
        d = back("mlp_out", parts["mlp_out"], params["mlp_out"], d)
        d = back("act", parts["act"], {}, d)
        return back("mlp_in", parts["mlp_in"], params["mlp_in"], d)

    if layer.config["norm"] == "pre":
        dh = g + back("norm2", parts["norm"], params["norm2"], mlp_back(g))
        dx = dh + back("norm1", parts["norm"], params["norm1"], attend_back(dh))
    else:
        ds2 = back("norm2", parts["norm"], params["norm2"], g)
        ds1 = back("norm1", parts["norm"], params["norm1"], ds2 + mlp_back(ds2))
        dx = ds1 + attend_back(ds1)
    return dx, {nm: grads[nm] for nm in params}


def _lm_parts(layer, params):
    """The layers ``transformer_lm`` builds, rebuilt from its config (see :func:`_block_parts`)."""
    from jaxnet.nn import Dense, Embedding, LearnedPositions, SinusoidalPositions, TransformerBlock
    from jaxnet.nn.transformer import _NORMS

    cfg = layer.config
    for opt in ("mlp_features", "dropout", "norm", "norm_kind", "activation", "num_kv_heads"):
        if opt not in cfg:
            raise ValueError(f"backprop: {layer.name} was built without {opt!r} in its config; rebuild it")
    d = cfg["d_model"]
    pos = {"learned": lambda: LearnedPositions(cfg["max_len"]), "sinusoidal": SinusoidalPositions}.get(
        cfg["positions"], lambda: None
    )()
    block = TransformerBlock(
        cfg["num_heads"],
        cfg["mlp_features"] or 4 * d,
        cfg["dropout"],
        True,
        cfg["norm"],
        cfg["norm_kind"],
        cfg["activation"],
        num_kv_heads=cfg["num_kv_heads"],
        rope=cfg["positions"] == "rope",
    )
    final = _NORMS[cfg["norm_kind"]]() if cfg["norm"] == "pre" else None
    head = None if cfg["tie_embeddings"] else Dense(cfg["vocab_size"])
    return Embedding(cfg["vocab_size"], d), pos, block, final, head


def _lm_forward(layer, params, state, x, key, train, mask=None):
    _check_input(layer, params, state, x, key, train, mask)
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.integer):
        raise TypeError(f"{layer.name} expected integer token ids, got dtype {x.dtype}; cast with .astype(jnp.int32)")
    embed, pos, block, final, head = _lm_parts(layer, params)
    saved = {}
    h, _, saved["embedding"] = _forward(embed, params["embedding"], {}, x, None, train, None)
    if pos is not None:
        h, _, saved["positions"] = _forward(pos, params.get("positions", {}), {}, h, None, train, None)
    for i in range(layer.config["num_layers"]):
        h, _, saved[f"block_{i}"] = _forward(block, params[f"block_{i}"], {}, h, _fold(key, i), train, mask)
    if final is not None:
        h, _, saved["norm"] = _forward(final, params["norm"], {}, h, None, train, None)
    if head is None:
        return h @ params["embedding"]["embedding"].T, state, (saved, h)
    y, _, saved["head"] = _forward(head, params["head"], {}, h, None, train, None)
    return y, state, (saved, h)


def _lm_backward(layer, params, saved_all, g):
    saved, h_last = saved_all
    embed, pos, block, final, head = _lm_parts(layer, params)
    grads = {}
    if head is None:
        table = params["embedding"]["embedding"]
        d = g @ table.astype(g.dtype)
        tied = g.reshape(-1, g.shape[-1]).T @ h_last.reshape(-1, h_last.shape[-1])
    else:
        d, grads["head"] = _backward(head, params["head"], saved["head"], g)
    if final is not None:
        d, grads["norm"] = _backward(final, params["norm"], saved["norm"], d)
    for i in reversed(range(layer.config["num_layers"])):
        d, grads[f"block_{i}"] = _backward(block, params[f"block_{i}"], saved[f"block_{i}"], d)
    if pos is not None:
        d, gp = _backward(pos, params.get("positions", {}), saved["positions"], d)
        if "positions" in params:
            grads["positions"] = gp
    dx, grads["embedding"] = _backward(embed, params["embedding"], saved["embedding"], d)
    if head is None:
        grads["embedding"] = {"embedding": grads["embedding"]["embedding"] + tied}
    return dx, {nm: grads[nm] for nm in params}


def _keep_input(layer, params, state, x, key, train, mask=None):
    y, new_state = layer.apply(params, state, x, key=key, train=train, mask=mask)
    return y, new_state, x


def seq_rules() -> dict:
    """The rules of this module by layer kind, as :class:`~jaxnet.autodiff.backprop.Rule` values."""
    from jaxnet.autodiff.backprop import Rule

    return {
        "multi_head_attention": Rule(_mha_forward, _mha_backward),
        "learned_positions": Rule(_keep_input, _learned_positions_backward),
        "sinusoidal_positions": Rule(_keep_input, _sinusoidal_backward),
        "simple_rnn_cell": Rule(_cell_forward, _cell_backward),
        "lstm_cell": Rule(_cell_forward, _cell_backward),
        "gru_cell": Rule(_cell_forward, _cell_backward),
        "rnn": Rule(_rnn_forward, _rnn_backward),
        "bidirectional": Rule(_bidirectional_forward, _bidirectional_backward),
        "transformer_block": Rule(_block_forward, _block_backward),
        "transformer_lm": Rule(_lm_forward, _lm_backward),
    }
