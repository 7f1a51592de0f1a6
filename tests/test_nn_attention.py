"""dot_product_attention and MultiHeadAttention against explicit float64 NumPy softmax(QK^T scale)V."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet.nn import MultiHeadAttention, dot_product_attention, dropout_mask, serial


def np_attention(q, k, v, mask=None, bias=None, scale=None, causal=False):
    """Loop over batch, head and query row; softmax over the allowed keys only (zeros if none)."""
    b_, t_, n_, h_ = q.shape
    s_, kv_ = k.shape[1], k.shape[2]
    group = n_ // kv_
    scale = 1.0 / np.sqrt(h_) if scale is None else scale
    allowed = np.ones((b_, n_, t_, s_), bool)
    if mask is not None:
        allowed &= np.broadcast_to(mask, allowed.shape)
    if causal:
        allowed &= np.tril(np.ones((t_, s_), bool))
    bias = np.zeros((b_, n_, t_, s_)) if bias is None else np.broadcast_to(bias, (b_, n_, t_, s_))
    out = np.zeros((b_, t_, n_, v.shape[-1]))
    for b in range(b_):
        for n in range(n_):
            kh = n // group
            logits = q[b, :, n] @ k[b, :, kh].T * scale + bias[b, n]
            for t in range(t_):
                idx = allowed[b, n, t]
                if not idx.any():
                    continue
                e = np.exp(logits[t, idx] - logits[t, idx].max())
                out[b, t, n] = (e / e.sum()) @ v[b, idx, kh]
    return out


def _qkv(rng, b=2, t=5, s=6, n=4, kv=4, h=8):
    return rng.normal(size=(b, t, n, h)), rng.normal(size=(b, s, kv, h)), rng.normal(size=(b, s, kv, h))


CASES = {
    "plain": {},
    "causal": {"causal": True, "t": 6},
    "causal_cross_lengths": {"causal": True, "t": 4, "s": 7},
    "padding": {"pad": True},
    "grouped_query": {"kv": 2},
    "grouped_query_causal_padding": {"kv": 1, "causal": True, "pad": True, "t": 6},
    "bias_and_scale": {"bias": True, "scale": 0.3},
}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_numpy_float64(x64, rng, case):
    c = CASES[case]
    b, t, s = 3, c.get("t", 5), c.get("s", c.get("t", 6))
    q, k, v = _qkv(rng, b=b, t=t, s=s, kv=c.get("kv", 4))
    mask = bias = None
    if c.get("pad"):
        lengths = np.array([s, 2, 4])
        mask = (np.arange(s)[None] < lengths[:, None])[:, None, None, :]
    if c.get("bias"):
        bias = rng.normal(size=(1, 4, t, s))
    got = dot_product_attention(q, k, v, bias, mask, scale=c.get("scale"), is_causal=c.get("causal", False))
    assert got.dtype == jnp.float64
    want = np_attention(q, k, v, mask, bias, c.get("scale"), c.get("causal", False))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-12)


def test_unbatched_layout_and_jax_reference(rng):
    q, k, v = (a.astype(np.float32) for a in _qkv(rng))
    ours = dot_product_attention(q, k, v, is_causal=False)
    np.testing.assert_allclose(ours, jax.nn.dot_product_attention(q, k, v), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dot_product_attention(q[0], k[0], v[0]), ours[0], rtol=1e-6, atol=1e-6)


def test_agrees_with_jax_nn_on_causal_grouped_padded_float32(rng):
    q, k, v = (a.astype(np.float32) for a in _qkv(rng, t=6, s=6, kv=2))
    mask = (np.arange(6)[None] < np.array([[6], [4]]))[:, None, None, :]
    f = jax.jit(lambda q, k, v: dot_product_attention(q, k, v, mask=mask, is_causal=True))
    want = jax.nn.dot_product_attention(q, k, v, mask=mask, is_causal=True)
    np.testing.assert_allclose(f(q, k, v), want, rtol=1e-5, atol=1e-5)


def test_row_with_nothing_to_attend_is_zero_with_finite_grads(x64, rng):
    q, k, v = _qkv(rng)
    mask = np.ones((2, 1, 5, 6), bool)
    mask[1, :, 2] = False  # query 2 of sample 1 sees no key
    mask[0] = False  # sample 0 sees nothing at all

    def f(q, k, v):
        return jnp.sum(dot_product_attention(q, k, v, mask=mask) ** 2)

    out = dot_product_attention(q, k, v, mask=mask)
    assert np.all(np.asarray(out[0]) == 0) and np.all(np.asarray(out[1, 2]) == 0)
    np.testing.assert_allclose(out, np_attention(q, k, v, mask), atol=1e-12)
    grads = jax.grad(f, argnums=(0, 1, 2))(q, k, v)
    assert all(np.isfinite(np.asarray(g)).all() for g in grads)
    assert np.all(np.asarray(grads[0][0]) == 0)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_softmax_in_float32(rng, dtype):
    q, k, v = _qkv(rng)
    got = dot_product_attention(*(jnp.asarray(a, dtype) for a in (q, k, v)), is_causal=True)
    assert got.dtype == dtype
    ref = np_attention(*(np.asarray(jnp.asarray(a, dtype).astype(jnp.float32)) for a in (q, k, v)), causal=True)
    np.testing.assert_allclose(np.asarray(got.astype(jnp.float32)), ref, atol=3e-2)


def test_dropout_uses_the_key(x64, rng):
    q, k, v = _qkv(rng)
    key = jax.random.PRNGKey(3)
    got = dot_product_attention(q, k, v, dropout_rate=0.25, dropout_key=key)
    np.testing.assert_array_equal(got, dot_product_attention(q, k, v, dropout_rate=0.25, dropout_key=key))
    keep = np.asarray(dropout_mask(key, 0.25, (2, 4, 5, 6)))
    logits = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(8)
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w = w / w.sum(-1, keepdims=True) * keep / 0.75
    np.testing.assert_allclose(got, np.einsum("bnts,bsnh->btnh", w, v), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"dot_product_attention: dropout_rate=0.25 needs dropout_key"):
        dot_product_attention(q, k, v, dropout_rate=0.25)


def test_function_bad_input(rng):
    q, k, v = _qkv(rng, kv=3)
    with pytest.raises(ValueError, match=r"query's 4 heads must be a multiple of the key/value heads, got 3"):
        dot_product_attention(q, k, v)
    q, k, v = _qkv(rng)
    with pytest.raises(ValueError, match=r"mask of shape \(2, 5\) does not broadcast to .* \(2, 4, 5, 6\)"):
        dot_product_attention(q, k, v, mask=np.ones((2, 5), bool))
    with pytest.raises(ValueError, match=r"same head_dim, got 8 and 4"):
        dot_product_attention(q, k[..., :4], v)
    with pytest.raises(ValueError, match=r"query must be \[batch, time, heads, head_dim\], got shape \(2, 5\)"):
        dot_product_attention(q[:, :, 0, 0], k, v)


# ---- MultiHeadAttention -----------------------------------------------------------------------


def torch_mha_numpy(x, w_in, b_in, w_out, b_out, heads, key_padding_mask=None):
    """PyTorch nn.MultiheadAttention(batch_first=True) written out in NumPy (its documented formula)."""
    e = x.shape[-1]
    hd = e // heads
    q, k, v = (x @ w_in[i * e : (i + 1) * e].T + b_in[i * e : (i + 1) * e] for i in range(3))
    b_, t_ = x.shape[:2]
    split = [a.reshape(b_, t_, heads, hd).transpose(0, 2, 1, 3) for a in (q, k, v)]
    scores = split[0] @ split[1].transpose(0, 1, 3, 2) / np.sqrt(hd)
    if key_padding_mask is not None:
        scores = np.where(key_padding_mask[:, None, None, :], -np.inf, scores)
    w = np.exp(scores - scores.max(-1, keepdims=True))
    w = w / w.sum(-1, keepdims=True)
    o = (w @ split[2]).transpose(0, 2, 1, 3).reshape(b_, t_, e)
    return o @ w_out.T + b_out


def test_pytorch_in_proj_weights_load_directly(x64, rng):
    e, heads = 12, 3
    w_in, b_in = rng.normal(size=(3 * e, e)), rng.normal(size=3 * e)
    w_out, b_out = rng.normal(size=(e, e)), rng.normal(size=e)
    x = rng.normal(size=(2, 5, e))
    layer = MultiHeadAttention(heads)
    _, params, state = layer.init(jax.random.PRNGKey(0), (-1, 5, e))
    loaded = {
        nm: {"w": w_in[i * e : (i + 1) * e].T, "b": b_in[i * e : (i + 1) * e]}
        for i, nm in enumerate(("query", "key", "value"))
    }
    loaded["out"] = {"w": w_out.T, "b": b_out}
    assert jax.tree.map(np.shape, loaded) == jax.tree.map(np.shape, params)
    lengths = np.array([5, 3])
    mask = np.arange(5)[None] < lengths[:, None]
    y, _ = layer.apply(loaded, state, x, train=False, mask=mask)
    want = torch_mha_numpy(x, w_in, b_in, w_out, b_out, heads, key_padding_mask=~mask)
    np.testing.assert_allclose(np.asarray(y)[mask], want[mask], rtol=1e-11, atol=1e-11)
    assert np.all(np.asarray(y)[~mask] == 0)  # padded query positions output zeros
    y_nomask, _ = layer.apply(loaded, state, x, train=False)
    np.testing.assert_allclose(y_nomask, torch_mha_numpy(x, w_in, b_in, w_out, b_out, heads), rtol=1e-11)


def _mha_numpy(params, x, c, heads, kv, hd, causal=False, key_mask=None):
    def proj(p, a, n):
        return (a @ p["w"] + p["b"]).reshape(*a.shape[:2], n, hd)

    q, k, v = proj(params["query"], x, heads), proj(params["key"], c, kv), proj(params["value"], c, kv)
    m = None if key_mask is None else key_mask[:, None, None, :]
    o = np_attention(q, k, v, m, causal=causal).reshape(*x.shape[:2], heads * hd)
    return o @ params["out"]["w"] + params["out"]["b"]


def test_grouped_query_causal_self_attention(x64, rng):
    layer = MultiHeadAttention(4, head_dim=3, num_kv_heads=2, out_features=5, causal=True, dtype=jnp.float64)
    shape, params, _ = layer.init(jax.random.PRNGKey(1), (-1, 6, 10))
    assert shape == (-1, 6, 5)
    assert params["key"]["w"].shape == (10, 6) and params["query"]["w"].shape == (10, 12)
    params = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape)), params)
    x = rng.normal(size=(2, 6, 10))
    y, _ = jax.jit(lambda p, x: layer.apply(p, {}, x, train=False))(params, x)
    np.testing.assert_allclose(y, _mha_numpy(params, x, x, 4, 2, 3, causal=True), rtol=1e-11, atol=1e-11)


def test_cross_attention_with_context_mask(x64, rng):
    layer = MultiHeadAttention(2, dtype=jnp.float64)
    shape, params, _ = layer.init(jax.random.PRNGKey(1), ((-1, 4, 6), (-1, 7, 3)))
    assert shape == (-1, 4, 6) and params["key"]["w"].shape == (3, 6)
    params = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape)), params)
    x, c = rng.normal(size=(2, 4, 6)), rng.normal(size=(2, 7, 3))
    cm = np.arange(7)[None] < np.array([[7], [2]])
    y, _ = layer.apply(params, {}, (x, c, cm), train=False)
    np.testing.assert_allclose(y, _mha_numpy(params, x, c, 2, 2, 3, key_mask=cm), rtol=1e-11, atol=1e-11)
    y2, _ = layer.apply(params, {}, (x, c), train=False)
    np.testing.assert_allclose(y2, _mha_numpy(params, x, c, 2, 2, 3), rtol=1e-11, atol=1e-11)


def test_padded_keys_never_change_real_outputs(x64, rng):
    layer = MultiHeadAttention(2, rope=True, dtype=jnp.float64)
    _, params, _ = layer.init(jax.random.PRNGKey(2), (-1, 5, 4))
    x = rng.normal(size=(1, 5, 4))
    mask = np.array([[True, True, True, False, False]])
    y, _ = layer.apply(params, {}, x, train=False, mask=mask)
    x2 = x.copy()
    x2[:, 3:] = 100.0 * rng.normal(size=(1, 2, 4))
    y2, _ = layer.apply(params, {}, x2, train=False, mask=mask)
    np.testing.assert_allclose(y, y2, rtol=1e-13, atol=1e-13)
    alone, _ = layer.apply(params, {}, x[:, :3], train=False)
    np.testing.assert_allclose(y[:, :3], alone, rtol=1e-12, atol=1e-12)


def test_dropout_in_serial_needs_key(rng):
    model = serial(MultiHeadAttention(2, dropout=0.5, name="attn"))
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 3, 4))
    x = jnp.asarray(rng.normal(size=(2, 3, 4)), jnp.float32)
    y_eval, _ = model.apply(params, state, x, train=False)
    y_a, _ = model.apply(params, state, x, train=True, key=jax.random.PRNGKey(1))
    y_b, _ = model.apply(params, state, x, train=True, key=jax.random.PRNGKey(2))
    assert not np.allclose(y_a, y_eval) and not np.allclose(y_a, y_b)
    with pytest.raises(ValueError, match=r"MultiHeadAttention\(2, dropout=0.5\).apply: train=True .* needs key"):
        MultiHeadAttention(2, dropout=0.5).apply(params["attn"], {}, x, train=True)


def test_layer_bad_input(rng):
    with pytest.raises(ValueError, match=r"num_heads=3 must divide the input's 8 features \(or pass head_dim=\)"):
        MultiHeadAttention(3).init(jax.random.PRNGKey(0), (-1, 5, 8))
    with pytest.raises(ValueError, match=r"num_heads=6 must be a multiple of num_kv_heads=4"):
        MultiHeadAttention(6, num_kv_heads=4)
    with pytest.raises(ValueError, match=r"rope=True needs an even head_dim, got 3"):
        MultiHeadAttention(2, head_dim=3, rope=True)
    layer = MultiHeadAttention(2)
    _, params, _ = layer.init(jax.random.PRNGKey(0), ((-1, 5, 8), (-1, 4, 6)))
    x = jnp.ones((2, 5, 8))
    with pytest.raises(ValueError, match=r"expected a context of shape \[2, k_time, 6\] .* got \(2, 4, 3\)"):
        layer.apply(params, {}, (x, jnp.ones((2, 4, 3))), train=False)
    with pytest.raises(ValueError, match=r"mask must have shape \[batch\] or \[batch, time\] .* got \(2, 4\)"):
        layer.apply(params, {}, (x, jnp.ones((2, 4, 6))), train=False, mask=jnp.ones((2, 4), bool))
    with pytest.raises(ValueError, match=r"context_mask must have shape \[batch, k_time\] = \(2, 4\), got \(2, 5\)"):
        layer.apply(params, {}, (x, jnp.ones((2, 4, 6)), jnp.ones((2, 5), bool)), train=False)
    with pytest.raises(ValueError, match=r"MultiHeadAttention\(2\).init expected x of shape \[batch, time, features\]"):
        layer.init(jax.random.PRNGKey(0), (-1, 8))
    with pytest.raises(ValueError, match=r"MultiHeadAttention\(2\) expected x of shape \[batch, time, features\], got"):
        layer.apply(params, {}, (jnp.ones((2, 8)), jnp.ones((2, 4, 6))), train=False)
