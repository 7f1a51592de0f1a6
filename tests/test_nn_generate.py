"""generate: key/value-cached decoding of transformer_lm models against full recomputation."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet as jn
from jaxnet.nn import Dense, generate, serial, transformer_lm
from jaxnet.nn.core import ParamsMismatchError
from jaxnet.nn.decoding import _generate, _init_cache, _model_args

VOCAB, MAX_LEN = 11, 10


def build(dtype=jnp.float32, **kw):
    return _build(dtype, tuple(sorted(kw.items())))


@functools.cache
def _build(dtype, items):
    # one model object per configuration, so that tests share its compiled programs
    kw = {"num_layers": 1, "num_heads": 2, **dict(items)}
    lm = transformer_lm(VOCAB, 8, max_len=MAX_LEN, dtype=dtype, **kw)
    _, params, _ = lm.init(jax.random.PRNGKey(0), (-1, MAX_LEN))
    # the default normal(1) embedding and small positions make every logit row well separated
    return lm, params


def full_greedy(lm, params, prompt, n):
    """Re-run the whole model on the growing sequence and take the argmax of the last position."""
    # The model is causal, so the logits at position t depend on tokens 0..t only: running it on
    # the sequence padded to max_len (one compiled program) is running it on the prefix.
    full = jax.jit(lambda p, s: lm.apply(p, {}, s, train=False)[0])
    b, t0 = prompt.shape
    seq = jnp.zeros((b, MAX_LEN), prompt.dtype).at[:, :t0].set(prompt)
    for t in range(t0, t0 + n):
        nxt = jnp.argmax(full(params, seq)[:, t - 1], axis=-1).astype(seq.dtype)
        seq = seq.at[:, t].set(nxt)
    return seq[:, : t0 + n]


def prompt_of(batch=3, length=3, seed=1):
    return jax.random.randint(jax.random.PRNGKey(seed), (batch, length), 0, VOCAB)


CONFIGS = [
    {"positions": "learned"},
    {"positions": "sinusoidal", "norm": "post", "norm_kind": "rmsnorm"},
    {"positions": "rope", "num_heads": 4, "num_kv_heads": 2, "tie_embeddings": False, "num_layers": 2},
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=["learned", "sinusoidal-post-rms", "rope-gqa-untied"])
def test_greedy_equals_full_recomputation(cfg):
    lm, params = build(**cfg)
    prompt = prompt_of()
    out = generate(lm, params, prompt, 6, temperature=0.0)
    assert out.shape == (3, 9) and out.dtype == prompt.dtype
    np.testing.assert_array_equal(out[:, :3], prompt)
    np.testing.assert_array_equal(out, full_greedy(lm, params, prompt, 6))


def test_greedy_equals_full_recomputation_float64(x64):
    lm, params = build(jnp.float64, positions="rope", num_heads=4, num_kv_heads=1)
    assert params["embedding"]["embedding"].dtype == jnp.float64
    prompt = prompt_of(2, 4, seed=5)
    out = generate(lm, params, prompt, 6, temperature=0.0)
    np.testing.assert_array_equal(out, full_greedy(lm, params, prompt, 6))


@pytest.mark.parametrize("positions", ["learned", "sinusoidal", "rope"])
def test_cached_logits_equal_full_logits(x64, positions):
    """The cached step's logits, prefill and one-token steps, equal the full model's (float64)."""
    lm, params = build(jnp.float64, positions=positions, num_heads=4, num_kv_heads=2, num_layers=2)
    seq = prompt_of(2, 7, seed=3)
    full, _ = lm.apply(params, {}, seq, train=False)
    step = jax.jit(lm.config["_cached_step"])
    cache = _init_cache(lm.config, params, 2)
    logits, cache = step(params, seq[:, :4], cache, jnp.asarray(0))
    parts = [logits]
    for t in range(4, 7):
        logits, cache = step(params, seq[:, t : t + 1], cache, jnp.asarray(t))
        parts.append(logits)
    np.testing.assert_allclose(jnp.concatenate(parts, axis=1), full, rtol=1e-12, atol=1e-12)
    # the cache holds the 7 positions' keys and zeros beyond
    k0 = cache[0][0]
    assert bool(jnp.all(k0[:, 7:] == 0)) and bool(jnp.any(k0[:, :7] != 0))


def test_sampling_is_reproducible_and_key_dependent():
    lm, params = build(positions="learned")
    prompt = prompt_of()
    a = generate(lm, params, prompt, 6, key=jax.random.PRNGKey(3), temperature=2.0)
    b = generate(lm, params, prompt, 6, key=jax.random.PRNGKey(3), temperature=2.0)
    c = generate(lm, params, prompt, 6, key=jax.random.PRNGKey(4), temperature=2.0)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert int(a.min()) >= 0 and int(a.max()) < VOCAB


def test_top_k_one_is_greedy_and_top_k_stays_in_the_top_k():
    lm, params = build(positions="learned")
    prompt = prompt_of()
    greedy = generate(lm, params, prompt, 6, temperature=0.0)
    np.testing.assert_array_equal(
        generate(lm, params, prompt, 6, key=jax.random.PRNGKey(9), temperature=5.0, top_k=1), greedy
    )
    out = generate(lm, params, prompt, 6, key=jax.random.PRNGKey(9), temperature=5.0, top_k=3)
    logits, _ = lm.apply(params, {}, out[:, :-1], train=False)  # causal: position t sees out[:, :t+1]
    for t in range(3, 9):
        top3 = np.argsort(-np.asarray(logits[:, t - 1]), axis=-1)[:, :3]
        assert all(int(out[i, t]) in top3[i] for i in range(3)), t


def test_compiles_once_for_the_same_shapes():
    lm, params = build()
    prompt = prompt_of(2, 2, seed=7)
    before = _generate._cache_size()
    generate(lm, params, prompt, 5, key=jax.random.PRNGKey(0), temperature=1.0)
    assert _generate._cache_size() == before + 1
    # another prompt, key and temperature of the same shapes: no new trace
    generate(lm, params, (prompt + 1) % VOCAB, 5, key=jax.random.PRNGKey(1), temperature=0.5)
    assert _generate._cache_size() == before + 1
    generate(lm, params, prompt, 5, temperature=0.0)  # greedy is another program
    assert _generate._cache_size() == before + 2


def _scan_eqns(jaxpr):
    return [e for e in jaxpr.eqns if e.primitive.name == "scan"]


def test_cache_is_preallocated_and_a_step_attends_one_position():
    lm, params = build(positions="rope", num_heads=4, num_kv_heads=2, num_layers=2)
    cache = _init_cache(lm.config, params, 3)
    assert [tuple(a.shape) for layer in cache for a in layer] == [(3, MAX_LEN, 2, 2)] * 4

    def program(prompt_len):
        prompt = prompt_of(3, prompt_len)
        kw = {
            **_model_args(lm),
            "max_new_tokens": MAX_LEN - prompt_len,
            "greedy": True,
            "top_k": None,
        }
        fn = jax.make_jaxpr(lambda p, x: _generate.__wrapped__(p, x, jax.random.PRNGKey(0), 1.0, **kw))
        (scan,) = _scan_eqns(fn(params, prompt).jaxpr)
        return scan

    short, long = program(2), program(6)
    # the carry holds the whole max_len cache; the loop body is the same program whatever the prefix
    carry_shapes = [tuple(v.aval.shape) for v in short.invars[short.params["num_consts"] :]]
    assert carry_shapes.count((3, MAX_LEN, 2, 2)) == 4
    assert str(short.params["jaxpr"]) == str(long.params["jaxpr"])
    assert short.params["length"] == MAX_LEN - 2 - 1 and long.params["length"] == MAX_LEN - 6 - 1
    # every attention product in a step has one query position against max_len keys
    body = short.params["jaxpr"].jaxpr
    logits = [
        tuple(e.outvars[0].aval.shape)
        for e in body.eqns
        if e.primitive.name == "dot_general" and MAX_LEN in e.outvars[0].aval.shape
    ]
    # batch 3, kv_heads 2, 2 heads per kv head, 1 query position, max_len keys (in XLA's axis
    # order): one product per block
    assert [sorted(s) for s in logits] == [sorted((3, 2, 2, 1, MAX_LEN))] * 2, logits


def test_bad_input_messages():
    lm, params = build()
    prompt = prompt_of()
    dense = Dense(3)
    with pytest.raises(TypeError, match=r"generate: model must be built by jaxnet.nn.transformer_lm, got Dense\(3\)"):
        generate(dense, {}, prompt, 2, temperature=0.0)
    with pytest.raises(TypeError, match=r"model must be built by jaxnet\.nn\.transformer_lm, got serial"):
        generate(serial(lm), {"transformerlm_0": params}, prompt, 2, temperature=0.0)
    with pytest.raises(TypeError, match=r"model must be built by jaxnet\.nn\.transformer_lm, got function"):
        generate(transformer_lm, params, prompt, 2, temperature=0.0)
    with pytest.raises(TypeError, match="prompt must hold integer token ids, got dtype float32"):
        generate(lm, params, prompt.astype(jnp.float32), 2, temperature=0.0)
    with pytest.raises(ValueError, match=r"prompt must have shape \[batch, prompt_len\].*got \(3,\)"):
        generate(lm, params, prompt[0], 2, temperature=0.0)
    with pytest.raises(ValueError, match="the prompt has 11 tokens, more than the model's max_len=10"):
        generate(lm, params, jnp.zeros((1, 11), jnp.int32), 1, temperature=0.0)
    with pytest.raises(ValueError, match=r"3 \+ 8 = 11 exceeds the model's max_len=10.*at most 7 new tokens"):
        generate(lm, params, prompt, 8, temperature=0.0)
    with pytest.raises(ValueError, match="max_new_tokens must be a positive int, got 0"):
        generate(lm, params, prompt, 0, temperature=0.0)
    with pytest.raises(ValueError, match=r"prompt ids must lie in \[0, 11\), got min 0, max 11"):
        generate(lm, params, prompt.at[0, 0].set(11), 2, temperature=0.0)
    with pytest.raises(ValueError, match=r"temperature must be >= 0\.0, got -1\.0"):
        generate(lm, params, prompt, 2, key=jax.random.PRNGKey(0), temperature=-1.0)
    with pytest.raises(ValueError, match="temperature must be finite"):
        generate(lm, params, prompt, 2, key=jax.random.PRNGKey(0), temperature=float("nan"))
    with pytest.raises(TypeError, match="temperature must be a real number"):
        generate(lm, params, prompt, 2, key=jax.random.PRNGKey(0), temperature="hot")
    with pytest.raises(ValueError, match="top_k must be a positive int, got 0"):
        generate(lm, params, prompt, 2, key=jax.random.PRNGKey(0), top_k=0)
    with pytest.raises(ValueError, match="top_k must be at most vocab_size=11, got 12"):
        generate(lm, params, prompt, 2, key=jax.random.PRNGKey(0), top_k=12)
    with pytest.raises(TypeError, match=r"top_k must be an int, got float 2\.0"):
        generate(lm, params, prompt, 2, key=jax.random.PRNGKey(0), top_k=2.0)
    with pytest.raises(ValueError, match=r"sampling with temperature=1.0 needs key=jax.random.PRNGKey\(...\)"):
        generate(lm, params, prompt, 2)
    with pytest.raises(TypeError, match="generate"):
        generate(lm, params, prompt, 2, key=1.5)
    _, other_params = build(num_heads=4, num_kv_heads=1)
    with pytest.raises(ParamsMismatchError, match=r"params\['block_0'\]\['attention'\]\['key'\]"):
        generate(lm, other_params, prompt, 2, temperature=0.0)


def test_top_level_export_and_batch_of_one():
    lm, params = build()
    assert jn.generate is generate and jn.nn.generate is generate
    prompt = prompt_of(1, 1)
    out = generate(lm, params, prompt, MAX_LEN - 1, temperature=0.0)
    np.testing.assert_array_equal(out, full_greedy(lm, params, prompt, MAX_LEN - 1))


def test_transformer_lm_without_dropout_trains_without_a_key():
    """Dropout(0) inside the blocks used to ask for a key in training; without dropout, train=True is eval."""
    lm, params = build()
    tokens = prompt_of(2, 5)
    train_out, _ = lm.apply(params, {}, tokens, train=True)
    eval_out, _ = lm.apply(params, {}, tokens, train=False)
    np.testing.assert_array_equal(train_out, eval_out)
    dropping = transformer_lm(VOCAB, 8, 1, 2, MAX_LEN, dropout=0.1)
    with pytest.raises(ValueError, match=r"needs a random key|needs key="):
        dropping.apply(params, {}, tokens, train=True)
