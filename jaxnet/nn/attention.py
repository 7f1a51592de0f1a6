"""Scaled dot-product attention (Vaswani et al. 2017) and the ``MultiHeadAttention`` layer.

The function :func:`dot_product_attention` takes the layouts and keywords of
``jax.nn.dot_product_attention``: ``query`` ``[batch, q_time, heads, head_dim]``, ``key`` and
``value`` ``[batch, k_time, kv_heads, head_dim]``, ``mask`` True where a query may attend a key::

    weights = softmax(query key^T * scale + bias, over keys where mask)     [batch, heads, q_time, k_time]
    out     = weights value                                                 [batch, q_time, heads, head_dim]

It is written here rather than calling ``jax.nn.dot_product_attention``, whose XLA path takes the
softmax in float32 whatever the input dtype: float64 stays float64 end to end, and bf16/f16 inputs
take the logits and the softmax in float32. A query row with no key to attend gets zero weights
and a zero output (never NaN), with zero gradients.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxnet.nn import initializers
from jaxnet.nn.core import check_real, check_size, make_layer
from jaxnet.nn.dropout import dropout_mask
from jaxnet.types import Layer

_FN = "dot_product_attention"


def _as_bool_mask(where: str, mask, target: tuple) -> jax.Array:
    m = jnp.asarray(mask)
    if not (m.dtype == jnp.bool_ or jnp.issubdtype(m.dtype, jnp.integer) or jnp.issubdtype(m.dtype, jnp.floating)):
        raise TypeError(f"{where}: mask must hold bools (True = attend), got dtype {m.dtype}")
    try:
        jnp.broadcast_shapes(m.shape, target)
    except ValueError:
        raise ValueError(
            f"{where}: mask of shape {tuple(m.shape)} does not broadcast to [batch, heads, q_time, k_time] = {target}"
        ) from None
    return jnp.broadcast_to(m if m.dtype == jnp.bool_ else m != 0, target)


def attention_weights(
    query: jax.Array,
    key: jax.Array,
    bias: jax.Array | None = None,
    mask: jax.Array | None = None,
    *,
    scale: float | None = None,
    is_causal: bool = False,
) -> jax.Array:
    """The softmax weights of :func:`dot_product_attention`, ``[batch, heads, q_time, k_time]``.

    Computed in ``promote_types(query.dtype, float32)``; rows with nothing to attend are all zero.
    Arguments as :func:`dot_product_attention` (4-D ``query``/``key`` only).
    """
    b, t, n, h = query.shape
    s, k = key.shape[1], key.shape[2]
    ctype = jnp.promote_types(jnp.result_type(query, key), jnp.float32)
    scale = 1.0 / math.sqrt(h) if scale is None else scale
    q = query.astype(ctype).reshape(b, t, k, n // k, h)
    logits = jnp.einsum("btkgh,bskh->bkgts", q, key.astype(ctype)) * jnp.asarray(scale, ctype)
    logits = logits.reshape(b, n, t, s)
    target = (b, n, t, s)
    if bias is not None:
        bias = jnp.asarray(bias)
        try:
            logits = logits + jnp.broadcast_to(bias.astype(ctype), target)
        except ValueError:
            raise ValueError(
                f"{_FN}: bias of shape {tuple(bias.shape)} does not broadcast to "
                f"[batch, heads, q_time, k_time] = {target}"
            ) from None
    allowed = None if mask is None else _as_bool_mask(_FN, mask, target)
    if is_causal:
        # top-left aligned, as jax.nn.dot_product_attention: query i sees keys 0..i
        causal = jnp.tril(jnp.ones((t, s), jnp.bool_))
        allowed = causal if allowed is None else allowed & causal
    if allowed is None:
        return jax.nn.softmax(logits, axis=-1)
    allowed = jnp.broadcast_to(allowed, target)
    masked = jnp.where(allowed, logits, -jnp.inf)
    top = jnp.max(masked, axis=-1, keepdims=True)
    # an empty row has max -inf: shift by 0 there so that exp gives exact zeros, not NaN
    top = jax.lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0.0))
    p = jnp.where(allowed, jnp.exp(masked - top), 0.0)
    total = jnp.sum(p, axis=-1, keepdims=True)
    return p / jnp.where(total > 0, total, 1.0)


def dot_product_attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    bias: jax.Array | None = None,
    mask: jax.Array | None = None,
    *,
    scale: float | None = None,
    is_causal: bool = False,
    dropout_rate: float = 0.0,
    dropout_key: jax.Array | None = None,
) -> jax.Array:
    """Scaled dot-product attention: ``softmax(q k^T * scale + bias, where mask) v`` (Vaswani et al. 2017).

    The layouts and keywords are ``jax.nn.dot_product_attention``'s. Grouped-query attention
    (Ainslie et al. 2023): ``key``/``value`` may have ``kv_heads`` heads, a divisor of ``heads``;
    query head ``j`` then uses key/value head ``j // (heads // kv_heads)``.

    Args:
      query: ``[batch, q_time, heads, head_dim]`` (or without the batch axis).
      key: ``[batch, k_time, kv_heads, head_dim]``.
      value: ``[batch, k_time, kv_heads, v_dim]``.
      bias: added to the logits, broadcastable to ``[batch, heads, q_time, k_time]``.
      mask: bools (True = attend), broadcastable to ``[batch, heads, q_time, k_time]``; a padding
        mask ``m`` of shape ``[batch, k_time]`` is passed as ``m[:, None, None, :]``.
      scale: the logit scale; default ``1 / sqrt(head_dim)``.
      is_causal: query ``i`` attends keys ``0..i`` only (top-left aligned when ``q_time != k_time``).
      dropout_rate: probability of dropping each attention weight (inverted dropout), in ``[0, 1)``.
      dropout_key: the ``jax.random`` key of the dropout mask; required when ``dropout_rate > 0``.

    Returns:
      ``[batch, q_time, heads, v_dim]`` in ``query``'s dtype (float64 computed in float64, bf16/f16
      and float32 in float32). A query row with nothing to attend outputs zeros.

    Raises:
      ValueError: for inputs that are not 3-D/4-D, mismatched batch, time or head_dim, ``heads`` not a
        multiple of ``kv_heads``, a mask or bias that does not broadcast, or dropout without a key.
      TypeError: for non-float query/key/value.
    """
    query, key, value = jnp.asarray(query), jnp.asarray(key), jnp.asarray(value)
    for nm, a in (("query", query), ("key", key), ("value", value)):
        if a.ndim not in (3, 4):
            raise ValueError(f"{_FN}: {nm} must be [batch, time, heads, head_dim], got shape {tuple(a.shape)}")
        if not jnp.issubdtype(a.dtype, jnp.floating):
            raise TypeError(f"{_FN}: {nm} must be floating point, got dtype {a.dtype}")
    if not query.ndim == key.ndim == value.ndim:
        raise ValueError(
            f"{_FN}: query, key and value must have the same number of axes, got shapes "
            f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}"
        )
    unbatched = query.ndim == 3
    if unbatched:
        query, key, value = query[None], key[None], value[None]
        if bias is not None and jnp.ndim(bias) == 3:
            bias = jnp.asarray(bias)[None]
        if mask is not None and jnp.ndim(mask) == 3:
            mask = jnp.asarray(mask)[None]
    (b, _, n, h), (bk, s, k, hk) = query.shape, key.shape
    if key.shape[:3] != value.shape[:3] or b != bk:
        raise ValueError(
            f"{_FN}: query {tuple(query.shape)}, key {tuple(key.shape)} and value {tuple(value.shape)} must share "
            "the batch, and key and value the time and heads axes"
        )
    if h != hk:
        raise ValueError(f"{_FN}: query and key must have the same head_dim, got {h} and {hk}")
    if n % k:
        raise ValueError(
            f"{_FN}: the query's {n} heads must be a multiple of the key/value heads, got {k} "
            "(grouped-query attention shares each key/value head among heads // kv_heads query heads)"
        )
    rate = check_real(_FN, "dropout_rate", dropout_rate, low=0.0, high=1.0)
    if rate >= 1.0:
        raise ValueError(f"{_FN}: dropout_rate must be < 1, got {dropout_rate!r}")
    weights = attention_weights(query, key, bias, mask, scale=scale, is_causal=is_causal)
    if rate > 0.0:
        if dropout_key is None:
            raise ValueError(f"{_FN}: dropout_rate={rate:g} needs dropout_key=jax.random.PRNGKey(...)")
        keep = dropout_mask(dropout_key, rate, weights.shape)
        weights = jnp.where(keep, weights / (1.0 - rate), 0.0)
    g = n // k
    w5 = weights.reshape(b, k, g, weights.shape[2], s)
    out = jnp.einsum("bkgts,bskd->btkgd", w5, value.astype(weights.dtype))
    out = out.reshape(b, out.shape[1], n, value.shape[-1]).astype(query.dtype)
    return out[0] if unbatched else out


def _split_input(display: str, x):
    """``x`` -> ``(x, context, context_mask)``: self-attention, a pair, or a triple with a context mask."""
    if isinstance(x, (tuple, list)):
        if len(x) not in (2, 3):
            raise ValueError(
                f"{display} expected x, a pair (x, context) or a triple (x, context, context_mask), "
                f"got a tuple of {len(x)}"
            )
        return x[0], x[1], (x[2] if len(x) == 3 else None)
    return x, None, None


def MultiHeadAttention(
    num_heads: int,
    head_dim: int | None = None,
    num_kv_heads: int | None = None,
    out_features: int | None = None,
    causal: bool = False,
    dropout: float = 0.0,
    use_bias: bool = True,
    rope: bool = False,
    *,
    w_init="glorot_uniform",
    name: str | None = None,
    dtype=jnp.float32,
) -> Layer:
    """Multi-head attention (Vaswani et al. 2017): project, attend per head, concatenate, project.

    ``q = x Wq + bq``, ``k = c Wk + bk``, ``v = c Wv + bv`` with ``c = x`` (self-attention) or the
    context (cross-attention); each splits its last axis as ``[heads, head_dim]``; then
    ``y = concat_heads(dot_product_attention(q, k, v)) Wo + bo``.

    Input: ``x`` of shape ``[batch, time, features]``; a pair ``(x, context)`` with ``context`` of
    shape ``[batch, k_time, context_features]`` for cross-attention; or a triple ``(x, context,
    context_mask)`` with a ``[batch, k_time]`` mask of the context's real tokens. ``init`` takes the
    matching shape or tuple of shapes. Output ``[batch, time, out_features]``.

    The ``mask`` of ``apply``: ``[batch, time]`` marks the real tokens of ``x``; padded keys are
    never attended (self-attention) and padded query positions output zeros. A ``[batch]`` mask
    is ignored (each sample attends within itself only).

    PyTorch's ``nn.MultiheadAttention(E, num_heads)`` loads directly: with ``W = in_proj_weight``
    (``[3E, E]``) and ``b = in_proj_bias``, ``query.w = W[:E].T``, ``key.w = W[E:2E].T``,
    ``value.w = W[2E:].T`` (biases ``b[:E]``, ``b[E:2E]``, ``b[2E:]``), ``out.w =
    out_proj.weight.T``, ``out.b = out_proj.bias``; both split heads as ``[heads, head_dim]``.
    PyTorch's ``key_padding_mask`` (True = ignore) is ``~mask``.

    Args:
      num_heads: number of query heads.
      head_dim: size of each head; default ``features // num_heads``.
      num_kv_heads: key/value heads (grouped-query attention), a divisor of ``num_heads``; default
        ``num_heads``.
      out_features: size of the output; default the input's ``features``.
      causal: each position attends itself and earlier positions only.
      dropout: attention-weight dropout rate in training, in ``[0, 1)``; needs a ``key`` then.
      use_bias: add the biases ``b`` of the four projections.
      rope: rotate queries and keys by their positions (:func:`~jaxnet.nn.apply_rope`, Su et al. 2021).
      w_init: initializer of the four ``w`` (default Glorot uniform, PyTorch's ``in_proj`` init);
        biases start at zero.
      name: the key ``serial`` files the params under (default ``multiheadattention_<position>``).
      dtype: dtype of the params.

    Params: ``{"query": {"w": [F, heads*head_dim], "b"}, "key": {"w": [Fc, kv_heads*head_dim], "b"},
    "value": {...}, "out": {"w": [heads*head_dim, out_features], "b"}}``. No state.

    Raises:
      ValueError/TypeError: for non-positive sizes, ``num_heads`` not a multiple of ``num_kv_heads``,
        heads that do not divide the features (without ``head_dim``), an odd ``head_dim`` with
        ``rope=True``; at init/apply, for an input that is not ``[batch, time, features]``, a
        context whose features differ from those ``init`` saw, or a mask of the wrong shape.
    """
    check_size("MultiHeadAttention", "num_heads", num_heads)
    kv_heads = num_heads if num_kv_heads is None else check_size("MultiHeadAttention", "num_kv_heads", num_kv_heads)
    if head_dim is not None:
        check_size("MultiHeadAttention", "head_dim", head_dim)
    if out_features is not None:
        check_size("MultiHeadAttention", "out_features", out_features)
    if num_heads % kv_heads:
        raise ValueError(
            f"MultiHeadAttention: num_heads={num_heads} must be a multiple of num_kv_heads={kv_heads} "
            "(each key/value head serves num_heads // num_kv_heads query heads)"
        )
    rate = check_real("MultiHeadAttention", "dropout", dropout, low=0.0, high=1.0)
    if rate >= 1.0:
        raise ValueError(f"MultiHeadAttention: dropout must be < 1, got {dropout!r}")
    if rope and head_dim is not None and head_dim % 2:
        raise ValueError(f"MultiHeadAttention: rope=True needs an even head_dim, got {head_dim}")
    shown = [str(num_heads)] + [
        f"{k}={v}"
        for k, v in (("head_dim", head_dim), ("num_kv_heads", num_kv_heads), ("out_features", out_features))
        if v is not None
    ]
    shown += [
        f"{k}={v!r}"
        for k, v, d in (
            ("causal", causal, False),
            ("dropout", rate, 0.0),
            ("rope", rope, False),
            ("use_bias", use_bias, True),
        )
        if v != d
    ]
    display = f"MultiHeadAttention({', '.join(shown)})"
    w_init = initializers.get(w_init, where=f"{display} w_init")

    def sizes(features: int, where: str) -> int:
        if head_dim is not None:
            return head_dim
        if features % num_heads:
            raise ValueError(
                f"{display}{where}: num_heads={num_heads} must divide the input's {features} features "
                "(or pass head_dim=)"
            )
        hd = features // num_heads
        if rope and hd % 2:
            raise ValueError(f"{display}{where}: rope=True needs an even head_dim, got {features} // {num_heads}")
        return hd

    def check_seq(shape, what: str, where: str) -> None:
        if len(shape) != 3:
            raise ValueError(f"{display}{where} expected {what} of shape [batch, time, features], got {tuple(shape)}")

    def init(key, input_shape):
        if isinstance(input_shape[0], tuple):
            x_shape, c_shape = input_shape[0], input_shape[1]
            if len(input_shape) not in (2, 3):
                raise ValueError(f"{display}.init expected a shape, or a pair/triple of shapes, got {input_shape}")
        else:
            x_shape = c_shape = input_shape
        check_seq(x_shape, "x", ".init")
        check_seq(c_shape, "context", ".init")
        f, fc = x_shape[-1], c_shape[-1]
        if -1 in (f, fc):
            raise ValueError(f"{display}.init: the features axis must be known, got {input_shape}")
        hd = sizes(f, ".init")
        out = f if out_features is None else out_features
        keys = jax.random.split(key, 4)
        dims = {
            "query": (f, num_heads * hd),
            "key": (fc, kv_heads * hd),
            "value": (fc, kv_heads * hd),
            "out": (num_heads * hd, out),
        }
        params = {}
        for kk, (nm, (i, o)) in zip(keys, dims.items(), strict=True):
            params[nm] = {"w": w_init(kk, (i, o), dtype)}
            if use_bias:
                params[nm]["b"] = jnp.zeros((o,), dtype)
        return (*x_shape[:-1], out), params, {}

    def project(p, x, heads, hd):
        y = x @ p["w"]
        if use_bias:
            y = y + p["b"]
        return y.reshape(*x.shape[:-1], heads, hd)

    def apply(params, state, x, *, key, train, mask):
        x, context, context_mask = _split_input(display, x)
        x = jnp.asarray(x)
        check_seq(x.shape, "x", "")
        c = x if context is None else jnp.asarray(context)
        check_seq(c.shape, "context", "")
        hd = sizes(x.shape[-1], "")
        want_f, want_fc = params["query"]["w"].shape[0], params["key"]["w"].shape[0]
        if x.shape[-1] != want_f:
            raise ValueError(f"{display} expected x with {want_f} features (as at init), got shape {tuple(x.shape)}")
        if c.shape[-1] != want_fc or c.shape[0] != x.shape[0]:
            raise ValueError(
                f"{display} expected a context of shape [{x.shape[0]}, k_time, {want_fc}] (the features init saw), "
                f"got {tuple(c.shape)}"
            )
        q = project(params["query"], x, num_heads, hd)
        k = project(params["key"], c, kv_heads, hd)
        v = project(params["value"], c, kv_heads, hd)
        if rope:
            from jaxnet.nn.positional import apply_rope  # positional imports nothing of attention

            q = apply_rope(q, jnp.arange(x.shape[1]))
            k = apply_rope(k, jnp.arange(c.shape[1]))
        token_mask = None if (mask is None or jnp.ndim(mask) < 2) else jnp.asarray(mask) > 0
        key_mask = token_mask if context is None else None
        if context_mask is not None:
            cm = jnp.asarray(context_mask)
            if cm.shape != c.shape[:2]:
                raise ValueError(
                    f"{display}: context_mask must have shape [batch, k_time] = {tuple(c.shape[:2])}, "
                    f"got {tuple(cm.shape)}"
                )
            key_mask = cm > 0
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        drop_key = None
        if train and rate > 0.0:
            if key is None:
                raise ValueError(f"{display}.apply: train=True with dropout={rate:g} needs key=jax.random.PRNGKey(...)")
            drop_key = key
        y = dot_product_attention(
            q,
            k,
            v,
            mask=attn_mask,
            is_causal=causal,
            dropout_rate=rate if drop_key is not None else 0.0,
            dropout_key=drop_key,
        )
        y = y.reshape(*y.shape[:2], num_heads * hd) @ params["out"]["w"]
        if use_bias:
            y = y + params["out"]["b"]
        if token_mask is not None:
            y = jnp.where(token_mask[..., None], y, jnp.zeros((), y.dtype))
        return y, state

    def cached_step(params, x, cache, start):
        """Causal self-attention of ``x`` ``[batch, t, F]`` at positions ``start .. start+t-1`` against a cache.

        ``cache`` is the pair ``(k, v)`` of ``[batch, max_len, kv_heads, head_dim]`` arrays holding
        the keys and values of positions ``< start``; this writes those of ``x`` at ``start`` and
        returns ``(y, new_cache)``. Evaluation only (no dropout, no mask). Each query attends the
        cached positions ``<= its own``: the cost is ``t`` query positions against ``max_len`` keys,
        whatever ``start`` is. Internal hook of :func:`jaxnet.nn.generate`.
        """
        hd = sizes(x.shape[-1], "")
        q = project(params["query"], x, num_heads, hd)
        k = project(params["key"], x, kv_heads, hd)
        v = project(params["value"], x, kv_heads, hd)
        positions = start + jnp.arange(x.shape[1])
        if rope:
            from jaxnet.nn.positional import apply_rope  # positional imports nothing of attention

            q, k = apply_rope(q, positions), apply_rope(k, positions)
        ck, cv = cache
        ck = jax.lax.dynamic_update_slice_in_dim(ck, k.astype(ck.dtype), start, axis=1)
        cv = jax.lax.dynamic_update_slice_in_dim(cv, v.astype(cv.dtype), start, axis=1)
        allowed = jnp.arange(ck.shape[1])[None, :] <= positions[:, None]  # [t, max_len]
        y = dot_product_attention(q, ck.astype(k.dtype), cv.astype(v.dtype), mask=allowed)
        y = y.reshape(*y.shape[:2], num_heads * hd) @ params["out"]["w"]
        if use_bias:
            y = y + params["out"]["b"]
        return y, (ck, cv)

    config = {
        "num_heads": num_heads,
        "head_dim": head_dim,
        "num_kv_heads": kv_heads,
        "out_features": out_features,
        "causal": causal,
        "dropout": rate,
        "use_bias": use_bias,
        "rope": rope,
        "_cached_step": cached_step,  # the hook of jaxnet.nn.generate, not a hyperparameter
    }
    return make_layer(
        display,
        init,
        apply,
        kind="multi_head_attention",
        config=config,
        needs_key=rate > 0.0,
        scope=name,
        uses_mask=True,
    )
