"""TransformerBlock against a float64 NumPy transformer layer; transformer_lm's wiring, causality and errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet.nn import TransformerBlock, transformer_lm


def np_layernorm(x, p, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * p["gamma"] + p["beta"]


def np_rmsnorm(x, p, eps=1e-6):
    return x / np.sqrt((x**2).mean(-1, keepdims=True) + eps) * p["gamma"]


def np_gelu(z):
    return z * 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))


def np_self_attention(p, x, heads, causal, mask):
    b_, t_, _ = x.shape
    hd = p["query"]["w"].shape[1] // heads
    q, k, v = ((x @ p[n]["w"] + p[n]["b"]).reshape(b_, t_, heads, hd) for n in ("query", "key", "value"))
    s = np.einsum("bthd,bshd->bhts", q, k) / np.sqrt(hd)
    allowed = np.ones((b_, 1, t_, t_), bool) & mask[:, None, None, :]
    if causal:
        allowed &= np.tril(np.ones((t_, t_), bool))
    s = np.where(allowed, s, -np.inf)
    w = np.exp(s - s.max(-1, keepdims=True))
    o = np.einsum("bhts,bshd->bthd", w / w.sum(-1, keepdims=True), v).reshape(b_, t_, heads * hd)
    return (o @ p["out"]["w"] + p["out"]["b"]) * mask[..., None]


def np_block(p, x, heads, causal, norm, norm_kind, mask):
    nf = np_layernorm if norm_kind == "layernorm" else np_rmsnorm

    def mlp(u):
        return np_gelu(u @ p["mlp_in"]["w"] + p["mlp_in"]["b"]) @ p["mlp_out"]["w"] + p["mlp_out"]["b"]

    def attn(u):
        return np_self_attention(p["attention"], u, heads, causal, mask)

    if norm == "pre":
        h = x + attn(nf(x, p["norm1"]))
        y = h + mlp(nf(h, p["norm2"]))
    else:
        h = nf(x + attn(x), p["norm1"])
        y = nf(h + mlp(h), p["norm2"])
    return y * mask[..., None]


@pytest.mark.parametrize(("norm", "norm_kind", "causal"), [("pre", "layernorm", True), ("post", "rmsnorm", False)])
def test_block_matches_numpy(x64, rng, norm, norm_kind, causal):
    block = TransformerBlock(2, 12, causal=causal, norm=norm, norm_kind=norm_kind, dtype=jnp.float64)
    shape, params, state = block.init(jax.random.PRNGKey(0), (-1, 5, 6))
    assert shape == (-1, 5, 6)
    params = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape) * 0.5), params)
    x = rng.normal(size=(3, 5, 6))
    mask = np.arange(5)[None] < np.array([[5], [2], [4]])
    y, _ = block.apply(params, state, x, train=False, mask=mask)
    np_params = jax.tree.map(np.asarray, params)
    np.testing.assert_allclose(y, np_block(np_params, x, 2, causal, norm, norm_kind, mask), rtol=1e-10, atol=1e-10)


def test_block_dropout_needs_key_and_changes_output(rng):
    block = TransformerBlock(2, 8, dropout=0.3)
    _, params, state = block.init(jax.random.PRNGKey(0), (-1, 4, 4))
    x = jnp.asarray(rng.normal(size=(2, 4, 4)), jnp.float32)
    y1, _ = block.apply(params, state, x, train=True, key=jax.random.PRNGKey(1))
    y2, _ = block.apply(params, state, x, train=True, key=jax.random.PRNGKey(2))
    assert not np.allclose(y1, y2)
    with pytest.raises(ValueError, match=r"needs"):
        block.apply(params, state, x, train=True)


def test_lm_tied_equals_untied_with_the_transposed_table_and_is_causal(x64, rng):
    tied = transformer_lm(13, 8, 2, 2, 6, dtype=jnp.float64)
    untied = transformer_lm(13, 8, 2, 2, 6, tie_embeddings=False, dtype=jnp.float64)
    shape, params, state = tied.init(jax.random.PRNGKey(0), (-1, 6))
    assert shape == (-1, 6, 13) and set(params) == {"embedding", "positions", "block_0", "block_1", "norm"}
    tokens = jnp.asarray(rng.integers(0, 13, size=(2, 6)), jnp.int32)
    logits, _ = tied.apply(params, state, tokens, train=False)
    head = {"w": params["embedding"]["embedding"].T, "b": jnp.zeros(13, jnp.float64)}
    logits_untied, _ = untied.apply({**params, "head": head}, state, tokens, train=False)
    np.testing.assert_allclose(logits, logits_untied, rtol=1e-12, atol=1e-12)
    changed = tokens.at[:, 4].set((tokens[:, 4] + 1) % 13)
    logits2, _ = tied.apply(params, state, changed, train=False)
    np.testing.assert_allclose(logits[:, :4], logits2[:, :4], rtol=1e-12, atol=1e-12)
    assert not np.allclose(logits[:, 4:], logits2[:, 4:])


@pytest.mark.parametrize("positions", ["sinusoidal", "rope"])
def test_lm_position_options_run_and_learn(positions):
    model = transformer_lm(7, 8, 1, 2, 5, positions=positions, norm_kind="rmsnorm")
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 5))
    assert "positions" not in params
    tokens = jnp.array([[1, 2, 3, 4, 5], [2, 3, 4, 5, 6]], jnp.int32)

    def loss(p):
        logits = model.apply(p, state, tokens[:, :-1], train=False)[0]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), tokens[:, 1:, None], -1))

    step = jax.jit(lambda p: jax.tree.map(lambda w, g: w - 0.1 * g, p, jax.grad(loss)(p)))
    before = loss(params)
    for _ in range(20):
        params = step(params)
    assert float(loss(params)) < float(before)


def test_bad_input():
    with pytest.raises(ValueError, match=r"transformer_lm: num_heads=3 must divide d_model=8"):
        transformer_lm(10, 8, 1, 3, 6)
    model = transformer_lm(10, 8, 1, 2, 6)
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 6))
    with pytest.raises(TypeError, match=r"transformer_lm\(10, 8, 1, 2, 6\) expected integer token ids, got dtype"):
        model.apply(params, state, jnp.ones((2, 6), jnp.float32), train=False)
    with pytest.raises(ValueError, match=r"the sequence has 7 tokens, more than max_len=6"):
        model.apply(params, state, jnp.ones((2, 7), jnp.int32), train=False)
    with pytest.raises(ValueError, match=r"the sequence has 9 tokens, more than max_len=6"):
        model.init(jax.random.PRNGKey(0), (-1, 9))
    with pytest.raises(ValueError, match=r"expected token ids of shape \[batch, time\], got \(2, 6, 1\)"):
        model.apply(params, state, jnp.ones((2, 6, 1), jnp.int32), train=False)
    with pytest.raises(ValueError, match=r"MultiHeadAttention\(3\).init: num_heads=3 must divide the input's 8"):
        TransformerBlock(3, 16).init(jax.random.PRNGKey(0), (-1, 4, 8))
    with pytest.raises(ValueError, match=r"TransformerBlock: norm must be 'pre' or 'post', got 'middle'"):
        TransformerBlock(2, 16, norm="middle")


def test_lm_tied_head_starts_near_the_uniform_loss():
    """GPT-2's N(0, 0.02^2) embedding: at initialization the next-token loss of random text is ln(vocab)."""
    vocab, d = 256, 128
    model = transformer_lm(vocab, d, 1, 4, 16)
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 16))
    tokens = jax.random.randint(jax.random.PRNGKey(1), (8, 16), 0, vocab)
    logits, _ = model.apply(params, state, tokens, train=False)
    # the next token of random text is unpredictable: the loss is ln(vocab) plus what the logits' spread adds
    logp = jax.nn.log_softmax(logits[:, :-1])
    loss = -jnp.mean(jnp.take_along_axis(logp, tokens[:, 1:, None], -1))
    assert float(jnp.std(logits)) < 0.5
    assert abs(float(loss) - np.log(vocab)) < 0.1, float(loss)
    np.testing.assert_allclose(np.std(params["embedding"]["embedding"]), 0.02, rtol=0.05)
