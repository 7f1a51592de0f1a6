"""Transformer blocks (Vaswani et al. 2017) and a decoder-only language-model builder.

``TransformerBlock`` is one layer of attention and one MLP, each in a residual connection::

    pre-norm  (GPT-2, default):  h = x + drop(attn(norm1(x)));   y = h + drop(mlp(norm2(h)))
    post-norm (the 2017 paper):  h = norm1(x + drop(attn(x)));   y = norm2(h + drop(mlp(h)))
    mlp(u) = act(u W_in + b_in) W_out + b_out

``transformer_lm`` stacks them behind a token embedding and positions, with a final norm and an
output projection (tied to the embedding by default: ``logits = h E^T``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxnet.nn import initializers
from jaxnet.nn.activation_layers import activation_layer
from jaxnet.nn.attention import MultiHeadAttention
from jaxnet.nn.core import check_real, check_size, make_layer
from jaxnet.nn.dense import Dense
from jaxnet.nn.dropout import Dropout
from jaxnet.nn.embedding import Embedding
from jaxnet.nn.layer_norm import LayerNorm, RMSNorm
from jaxnet.nn.positional import LearnedPositions, SinusoidalPositions, sinusoidal_table
from jaxnet.types import Layer

_NORMS = {"layernorm": LayerNorm, "rmsnorm": RMSNorm}


def _fold(key, i):
    return None if key is None else jax.random.fold_in(key, i)


def TransformerBlock(
    num_heads: int,
    mlp_features: int,
    dropout: float = 0.0,
    causal: bool = False,
    norm: str = "pre",
    norm_kind: str = "layernorm",
    activation: str = "gelu",
    *,
    num_kv_heads: int | None = None,
    rope: bool = False,
    name: str | None = None,
    dtype=jnp.float32,
) -> Layer:
    """One transformer layer: multi-head self-attention and an MLP, each with a residual (module docstring).

    Input and output ``[batch, time, features]``. A ``[batch, time]`` mask reaches the attention
    (padded keys are never attended) and padded positions of the output are zeros.

    Args:
      num_heads: attention heads; must divide the features.
      mlp_features: hidden size of the MLP (often ``4 * features``).
      dropout: rate of the dropout after the attention and after the MLP, and on the attention
        weights, in training.
      causal: each position attends itself and earlier positions only (a decoder).
      norm: ``"pre"`` (normalize each branch's input) or ``"post"`` (normalize after each residual sum).
      norm_kind: ``"layernorm"`` or ``"rmsnorm"``.
      activation: the MLP's activation by name (default ``"gelu"``, the exact erf form).
      num_kv_heads: key/value heads of the attention (grouped-query); default ``num_heads``.
      rope: rotary position embeddings in the attention.
      name: the key ``serial`` files the params under (default ``transformerblock_<position>``).
      dtype: dtype of the params.

    Params: ``{"norm1", "attention", "norm2", "mlp_in", "mlp_out"}`` (the attention's params as
    :func:`~jaxnet.nn.MultiHeadAttention`, the norms' and Dense's as theirs). No state.

    Raises:
      ValueError/TypeError: for bad sizes, rates or options; at init/apply, for an input that is not
        ``[batch, time, features]`` or features that ``num_heads`` does not divide.
    """
    check_size("TransformerBlock", "mlp_features", mlp_features)
    rate = check_real("TransformerBlock", "dropout", dropout, low=0.0, high=1.0)
    if norm not in ("pre", "post"):
        raise ValueError(f"TransformerBlock: norm must be 'pre' or 'post', got {norm!r}")
    if norm_kind not in _NORMS:
        raise ValueError(f"TransformerBlock: norm_kind must be one of {list(_NORMS)}, got {norm_kind!r}")
    display = f"TransformerBlock({num_heads}, {mlp_features}" + (f", dropout={rate:g}" if rate else "")
    display += ", causal=True" * causal + (f", norm={norm!r}" if norm != "pre" else "") + ")"
    attention = MultiHeadAttention(
        num_heads, num_kv_heads=num_kv_heads, causal=causal, dropout=rate, rope=rope, dtype=dtype
    )
    act = activation_layer(activation, where=f"{display} activation")
    drop = Dropout(rate)
    norm1, norm2 = _NORMS[norm_kind](dtype=dtype), _NORMS[norm_kind](dtype=dtype)
    mlp_in = Dense(mlp_features, dtype=dtype)

    @functools.lru_cache(maxsize=8)
    def mlp_out(features: int) -> Layer:
        return Dense(features, dtype=dtype)

    def check(shape, where: str) -> None:
        if len(shape) != 3 or shape[-1] == -1:
            raise ValueError(f"{display}{where} expected input of shape [batch, time, features], got {tuple(shape)}")

    def init(key, input_shape):
        check(input_shape, ".init")
        keys = jax.random.split(key, 5)
        params = {}
        _, params["norm1"], _ = norm1.init(keys[0], input_shape)
        _, params["attention"], _ = attention.init(keys[1], input_shape)
        _, params["norm2"], _ = norm2.init(keys[2], input_shape)
        hidden, params["mlp_in"], _ = mlp_in.init(keys[3], input_shape)
        _, params["mlp_out"], _ = mlp_out(input_shape[-1]).init(keys[4], hidden)
        return input_shape, params, {}

    def forward(params, x, attend, key, train):
        """The block around ``attend(u, k) -> (a, aux)``; returns ``(y, aux)``."""
        kw = {"train": train}
        aux = []

        def attn(u, k):
            a, extra = attend(u, k)
            aux.append(extra)
            return dropped(a, _fold(k, 1))

        def mlp(u, k):
            h = act.apply({}, {}, mlp_in.apply(params["mlp_in"], {}, u, **kw)[0], **kw)[0]
            h = mlp_out(x.shape[-1]).apply(params["mlp_out"], {}, h, **kw)[0]
            return dropped(h, _fold(k, 2))

        def dropped(u, k):
            # without dropout, training needs no key
            return u if rate == 0.0 else drop.apply({}, {}, u, key=k, **kw)[0]

        def n1(u):
            return norm1.apply(params["norm1"], {}, u, **kw)[0]

        def n2(u):
            return norm2.apply(params["norm2"], {}, u, **kw)[0]

        k_attn, k_mlp = _fold(key, 0), _fold(key, 1)
        if norm == "pre":
            h = x + attn(n1(x), k_attn)
            y = h + mlp(n2(h), k_mlp)
        else:
            h = n1(x + attn(x, k_attn))
            y = n2(h + mlp(h, k_mlp))
        return y, aux[0]

    def apply(params, state, x, *, key, train, mask):
        x = jnp.asarray(x)
        check(x.shape, "")

        def attend(u, k):
            a, _ = attention.apply(params["attention"], {}, u, key=_fold(k, 0), mask=mask, train=train)
            return a, None

        y, _ = forward(params, x, attend, key, train)
        if mask is not None and jnp.ndim(mask) == 2:
            y = jnp.where(jnp.asarray(mask)[..., None] > 0, y, jnp.zeros((), y.dtype))
        return y, state

    def cached_step(params, x, cache, start):
        """The block on ``x`` at positions ``start ..`` with a key/value cache (evaluation): ``(y, new_cache)``."""
        x = jnp.asarray(x)
        check(x.shape, "")

        def attend(u, k):
            return attention.config["_cached_step"](params["attention"], u, cache, start)

        return forward(params, x, attend, None, False)

    config = {
        "num_heads": num_heads,
        "mlp_features": mlp_features,
        "dropout": rate,
        "causal": causal,
        "norm": norm,
        "norm_kind": norm_kind,
        "activation": activation,
        "num_kv_heads": num_kv_heads,
        "rope": rope,
        "_cached_step": cached_step,  # the hook of jaxnet.nn.generate, not a hyperparameter
    }
    return make_layer(
        display, init, apply, kind="transformer_block", config=config, needs_key=rate > 0.0, scope=name, uses_mask=True
    )


def transformer_lm(
    vocab_size: int,
    d_model: int,
    num_layers: int,
    num_heads: int,
    max_len: int,
    *,
    mlp_features: int | None = None,
    dropout: float = 0.0,
    positions: str = "learned",
    norm: str = "pre",
    norm_kind: str = "layernorm",
    activation: str = "gelu",
    num_kv_heads: int | None = None,
    tie_embeddings: bool = True,
    name: str | None = None,
    dtype=jnp.float32,
) -> Layer:
    """A decoder-only (causal) transformer language model: ids ``[batch, time]`` to logits ``[batch, time, vocab]``.

    ``h = positions(E[tokens])``, then ``num_layers`` causal :func:`TransformerBlock`\\ s, a final norm
    (pre-norm models) and ``logits = h E^T`` (tied, default) or ``h W + b`` (untied ``"head"``).
    The token embedding starts as N(0, 0.02^2) and learned positions as N(0, 0.02^2), GPT-2's
    initialization (Radford et al. 2019): with :func:`~jaxnet.nn.Embedding`'s own N(0, 1), a tied
    head's logit of the current token would start near ``sqrt(d_model)`` and the first loss far
    above ``ln(vocab_size)``.

    Args:
      vocab_size: number of token ids.
      d_model: width of the model (embedding size).
      num_layers: number of blocks.
      num_heads: attention heads per block; must divide ``d_model``.
      max_len: longest sequence accepted.
      mlp_features: hidden size of each block's MLP; default ``4 * d_model``.
      dropout: dropout rate inside the blocks in training.
      positions: ``"learned"`` (:func:`~jaxnet.nn.LearnedPositions`), ``"sinusoidal"`` or ``"rope"``
        (rotary embeddings in every attention).
      norm, norm_kind, activation, num_kv_heads: as :func:`TransformerBlock`.
      tie_embeddings: reuse the embedding as the output projection.
      name: the key ``serial`` files the params under (default ``transformerlm_<position>``).
      dtype: dtype of the params.

    Params: ``{"embedding", "positions" (learned only), "block_0" .. "block_{L-1}", "norm" (pre-norm
    only), "head" (untied only)}``. No state. A ``[batch, time]`` mask of real tokens reaches the blocks.

    Raises:
      ValueError/TypeError: for bad sizes or options; at init/apply, for input that is not
        ``[batch, time]``, a sequence longer than ``max_len``, or non-integer tokens.
    """
    for arg, v in (
        ("vocab_size", vocab_size),
        ("d_model", d_model),
        ("num_layers", num_layers),
        ("num_heads", num_heads),
        ("max_len", max_len),
    ):
        check_size("transformer_lm", arg, v)
    if d_model % num_heads:
        raise ValueError(f"transformer_lm: num_heads={num_heads} must divide d_model={d_model}")
    if positions not in ("learned", "sinusoidal", "rope"):
        raise ValueError(f"transformer_lm: positions must be 'learned', 'sinusoidal' or 'rope', got {positions!r}")
    display = f"transformer_lm({vocab_size}, {d_model}, {num_layers}, {num_heads}, {max_len})"
    embed = Embedding(vocab_size, d_model, initializers.normal(0.02), dtype=dtype)
    pos = (
        LearnedPositions(max_len, dtype=dtype)
        if positions == "learned"
        else (SinusoidalPositions() if positions == "sinusoidal" else None)
    )
    blocks = [
        TransformerBlock(
            num_heads,
            mlp_features or 4 * d_model,
            dropout,
            True,
            norm,
            norm_kind,
            activation,
            num_kv_heads=num_kv_heads,
            rope=positions == "rope",
            dtype=dtype,
        )
        for _ in range(num_layers)
    ]
    final = _NORMS[norm_kind](dtype=dtype) if norm == "pre" else None
    head = None if tie_embeddings else Dense(vocab_size, dtype=dtype)

    def check(shape, where: str) -> None:
        if len(shape) != 2:
            raise ValueError(f"{display}{where} expected token ids of shape [batch, time], got {tuple(shape)}")
        if shape[1] > max_len:
            raise ValueError(f"{display}{where}: the sequence has {shape[1]} tokens, more than max_len={max_len}")

    def init(key, input_shape):
        check(input_shape, ".init")
        keys = jax.random.split(key, num_layers + 3)
        shape, params = input_shape, {}
        shape, params["embedding"], _ = embed.init(keys[0], shape)
        if positions == "learned":
            _, params["positions"], _ = pos.init(keys[1], shape)  # type: ignore[union-attr]  # set for "learned"
        for i, block in enumerate(blocks):
            _, params[f"block_{i}"], _ = block.init(keys[3 + i], shape)
        if final is not None:
            _, params["norm"], _ = final.init(keys[2], shape)
        if head is not None:
            _, params["head"], _ = head.init(jax.random.fold_in(keys[2], 1), shape)
        return (*input_shape, vocab_size), params, {}

    def apply(params, state, x, *, key, train, mask):
        x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.integer):
            raise TypeError(f"{display} expected integer token ids, got dtype {x.dtype}; cast with .astype(jnp.int32)")
        check(x.shape, "")
        h, _ = embed.apply(params["embedding"], {}, x, train=train)
        if pos is not None:
            h, _ = pos.apply(params.get("positions", {}), {}, h, train=train)
        for i, block in enumerate(blocks):
            h, _ = block.apply(params[f"block_{i}"], {}, h, key=_fold(key, i), train=train, mask=mask)
        if final is not None:
            h, _ = final.apply(params["norm"], {}, h, train=train)
        if head is None:
            return h @ params["embedding"]["embedding"].T, state
        return head.apply(params["head"], {}, h, train=train)[0], state

    def cached_step(params, tokens, cache, start):
        """Logits of ``tokens`` ``[batch, t]`` at positions ``start .. start+t-1`` with a key/value cache.

        ``cache`` is a list, per block, of ``(k, v)`` arrays ``[batch, max_len, kv_heads, head_dim]``;
        returns ``(logits [batch, t, vocab], new_cache)``. Evaluation only, no mask. The internal
        hook of :func:`jaxnet.nn.generate`.
        """
        h, _ = embed.apply(params["embedding"], {}, tokens, train=False)
        t = tokens.shape[1]
        if positions == "learned":
            h = h + jax.lax.dynamic_slice_in_dim(params["positions"]["embedding"], start, t)
        elif positions == "sinusoidal":
            # SinusoidalPositions' sum, at the rows start .. start+t-1 of the table
            ctype = jnp.promote_types(h.dtype, jnp.float32)
            table = sinusoidal_table(max_len, h.shape[-1], dtype=ctype)
            h = (h.astype(ctype) + jax.lax.dynamic_slice_in_dim(table, start, t)).astype(h.dtype)
        new_cache = []
        for i, block in enumerate(blocks):
            h, c = block.config["_cached_step"](params[f"block_{i}"], h, cache[i], start)
            new_cache.append(c)
        if final is not None:
            h, _ = final.apply(params["norm"], {}, h, train=False)
        if head is None:
            return h @ params["embedding"]["embedding"].T, new_cache
        return head.apply(params["head"], {}, h, train=False)[0], new_cache

    config = {
        "vocab_size": vocab_size,
        "d_model": d_model,
        "num_layers": num_layers,
        "num_heads": num_heads,
        "max_len": max_len,
        "positions": positions,
        "tie_embeddings": tie_embeddings,
        # the options of the blocks, for the handwritten backprop (jaxnet.autodiff.seq_rules) to rebuild them
        "mlp_features": mlp_features,
        "dropout": dropout,
        "norm": norm,
        "norm_kind": norm_kind,
        "activation": activation,
        "num_kv_heads": num_kv_heads,
        "_cached_step": cached_step,  # the hook of jaxnet.nn.generate, not a hyperparameter
    }
    return make_layer(
        display, init, apply, kind="transformer_lm", config=config, needs_key=dropout > 0, scope=name, uses_mask=True
    )
