"""examples/char_lm.py and examples/sequence_classification.py: their pieces against references, tiny runs learn."""

import lzma
import math
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _examples import load_example


@pytest.fixture(scope="module")
def char_lm():
    return load_example("char_lm")


@pytest.fixture(scope="module")
def seqcls():
    return load_example("sequence_classification")


# --- char_lm ------------------------------------------------------------------------------------


def test_the_files_exist_and_the_held_out_ones_are_not_trained_on(char_lm):
    assert not set(char_lm.TRAIN_FILES) & set(char_lm.HELD_OUT_FILES)
    assert len(char_lm.read_stdlib(char_lm.HELD_OUT_FILES)) > 20_000


def test_a_missing_file_stops_with_its_name(char_lm, tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    with pytest.raises(SystemExit, match=r"lacks \['b\.py'\].*CPython 3\.11"):
        char_lm.read_stdlib(("a.py", "b.py"), stdlib=str(tmp_path))


def test_windows_pair_each_byte_with_the_next(char_lm):
    ids = np.arange(100, dtype=np.int32)
    x, y = char_lm.consecutive_windows(ids, 8)
    assert x.shape == y.shape == (12, 8)
    np.testing.assert_array_equal(y, x + 1)
    xr, yr = char_lm.random_windows(ids, 5, 8, jax.random.PRNGKey(0))
    np.testing.assert_array_equal(yr, xr + 1)
    assert xr.shape == (5, 8) and xr.max() < 100


def test_baselines_match_their_formulas(char_lm):
    text = b"abracadabra " * 50
    ids = char_lm.as_ids(text)
    got = char_lm.compressor_bpc(text)
    assert got["zlib"] == 8 * len(zlib.compress(text, 9)) / len(text)
    assert got["lzma"] == 8 * len(lzma.compress(text, preset=9)) / len(text)
    # add-one byte frequencies, in float64 by hand
    counts = {b: text.count(bytes([b])) for b in set(text)}
    total = len(text) + 256
    want = -sum(math.log2((counts[b] + 1) / total) for b in text) / len(text)
    assert char_lm.unigram_bpc(ids, ids) == pytest.approx(want, rel=1e-12)


def test_the_sampler_continues_the_prompt_past_the_cache_in_chunks(char_lm):
    from jaxnet import nn

    model = nn.transformer_lm(256, 8, 1, 2, 6, tie_embeddings=False)
    _, params, _ = model.init(jax.random.PRNGKey(0), (-1, 6))
    # a head that always prefers byte 65 ("A"): greedy-ish sampling then gives only "A"s
    params["head"]["w"] = jnp.zeros_like(params["head"]["w"])
    params["head"]["b"] = jnp.zeros(256).at[65].set(50.0)
    out = char_lm.sample(model, params, b"xyz", 9, key=jax.random.PRNGKey(1), context=6, top_k=2)
    assert out == b"xyz" + b"A" * 9


@pytest.mark.slow  # about 20 s of CPU (compiling fit, evaluate)
def test_a_tiny_run_beats_the_unigram_baseline(char_lm, capsys):
    figures = char_lm.main(["--tiny", "--sample", "0"])
    out = capsys.readouterr().out
    assert "held-out text" in out and "zlib" in out and "lzma" in out
    assert all(math.isfinite(v) for v in figures.values())
    assert figures["held_out_bpc"] < figures["unigram_bpc"] - 0.3
    assert figures["train_bpc"] < figures["unigram_bpc"]


# --- sequence_classification ----------------------------------------------------------------------


def test_the_labels_say_whether_the_pattern_occurs(seqcls):
    x, y = seqcls.make_data(jax.random.PRNGKey(3), 400)
    x, y = np.asarray(x), np.asarray(y)
    assert x.shape == (400, seqcls.MAX_LEN) and x.dtype == np.int32
    for row, label in zip(x, y, strict=True):
        real = row[row != seqcls.PAD]
        assert len(real) >= seqcls.MIN_LEN and (row[len(real) :] == seqcls.PAD).all()  # padding at the end
        assert real.min() >= 1 and real.max() <= seqcls.DIGITS
        text = " " + " ".join(map(str, real)) + " "
        assert label == (" 3 7 " in text)
    assert 0.35 < y.mean() < 0.65


@pytest.mark.slow  # 15-40 s of CPU each on 2 cores
@pytest.mark.parametrize("name", ["LSTM", "GRU", "transformer"])
def test_each_model_beats_chance_and_ignores_padding(seqcls, name):
    key = jax.random.PRNGKey(0)
    train, test = seqcls.make_data(key, 2048), seqcls.make_data(jax.random.PRNGKey(1), 512)
    majority = max(float(jnp.mean(test[1])), 1 - float(jnp.mean(test[1])))
    r = seqcls.run(name, seqcls.models()[name], train, test, epochs=6, key=jax.random.PRNGKey(2))
    assert r["accuracy"] > majority + 0.15, (r, majority)
    assert r["padding_difference"] < 1e-5


# --- library fixes the examples needed ------------------------------------------------------------


def test_a_per_sample_where_weighs_every_token_of_a_per_token_loss():
    from jaxnet.nn import losses as L

    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    logits = jax.random.normal(k1, (4, 5, 7))
    labels = jax.random.randint(k2, (4, 5), 0, 7)
    where = jnp.array([1.0, 0.0, 1.0, 0.0])
    got = L.softmax_cross_entropy_with_integer_labels(logits, labels, where)
    logp = np.asarray(jax.nn.log_softmax(logits.astype(jnp.float32)), np.float64)
    per = -np.take_along_axis(logp, np.asarray(labels)[..., None], axis=-1)[..., 0]
    assert float(got) == pytest.approx(per[[0, 2]].mean(), rel=1e-6)
    with pytest.raises(ValueError, match=r"where must have shape \(4, 5\)"):
        L.softmax_cross_entropy_with_integer_labels(logits, labels, jnp.ones(5))


def test_evaluate_takes_per_token_labels():
    from jaxnet import nn, train

    model = nn.transformer_lm(11, 8, 1, 2, 6)
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 6))
    x = jax.random.randint(jax.random.PRNGKey(1), (5, 6), 0, 11)
    y = jnp.roll(x, -1, axis=1)
    loss = "softmax_cross_entropy_with_integer_labels"
    got = train.evaluate(model, loss, params, state, (x, y), batch_size=2)["loss"]  # padded last batch
    logits, _ = model.apply(params, state, x, train=False)
    assert got == pytest.approx(float(nn.softmax_cross_entropy_with_integer_labels(logits, y)), rel=1e-5)


def test_a_transformer_without_dropout_trains_without_a_key():
    from jaxnet import nn, optim, train

    model = nn.transformer_lm(11, 8, 1, 2, 6)
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 6))
    opt = optim.adam(1e-2)
    step = train.make_train_step(model, "softmax_cross_entropy_with_integer_labels", opt, donate=False)
    x = jax.random.randint(jax.random.PRNGKey(1), (3, 6), 0, 11)
    _, _, _, logs = step(params, state, opt.init(params), (x, jnp.roll(x, -1, axis=1)), None)
    assert np.isfinite(float(logs["loss"]))
    with pytest.raises(ValueError, match=r"key=jax\.random\.PRNGKey"):
        dropping = nn.transformer_lm(11, 8, 1, 2, 6, dropout=0.1)
        step = train.make_train_step(dropping, "softmax_cross_entropy_with_integer_labels", opt, donate=False)
        step(params, state, opt.init(params), (x, jnp.roll(x, -1, axis=1)), None)
