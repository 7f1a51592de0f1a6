"""Rotary embeddings, learned and sinusoidal positions against NumPy formulas in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet.nn import LearnedPositions, MultiHeadAttention, SinusoidalPositions, apply_rope, serial


def np_rope(x, positions, base=10000.0):
    """Su et al. 2021, eq. 34: a 2x2 rotation of each pair (2i, 2i+1) by p * base^(-2i/d), one pair at a time."""
    y = np.empty_like(x)
    d = x.shape[-1]
    pos = np.broadcast_to(positions, x.shape[:-2])
    for idx in np.ndindex(*x.shape[:-2]):
        p = pos[idx]
        for i in range(d // 2):
            a = p * base ** (-2 * i / d)
            rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
            y[idx][:, 2 * i : 2 * i + 2] = x[idx][:, 2 * i : 2 * i + 2] @ rot.T
    return y


def test_rope_matches_numpy(x64, rng):
    x = rng.normal(size=(2, 5, 3, 8))
    got = apply_rope(x, jnp.arange(5))
    assert got.dtype == jnp.float64
    np.testing.assert_allclose(got, np_rope(x, np.arange(5)), rtol=1e-12, atol=1e-12)
    pos = rng.integers(0, 50, size=(2, 5))
    np.testing.assert_allclose(apply_rope(x, pos, base=500.0), np_rope(x, pos, 500.0), atol=1e-12)


def test_rope_scores_depend_on_relative_position_only(x64, rng):
    q, k = rng.normal(size=(1, 1, 1, 6)), rng.normal(size=(1, 1, 1, 6))

    def score(i, j):
        return float(np.sum(apply_rope(q, jnp.array([i])) * apply_rope(k, jnp.array([j]))))

    assert score(7, 3) == pytest.approx(score(14, 10), abs=1e-12)
    assert score(7, 3) != pytest.approx(score(7, 4), abs=1e-6)


def test_rope_bad_input():
    with pytest.raises(ValueError, match=r"apply_rope: head_dim must be even .* got \(1, 4, 2, 5\)"):
        apply_rope(jnp.ones((1, 4, 2, 5)), jnp.arange(4))
    with pytest.raises(ValueError, match=r"positions must have shape \[time\] = \(4,\) .* got \(3,\)"):
        apply_rope(jnp.ones((1, 4, 2, 6)), jnp.arange(3))


def test_mha_rope_rotates_queries_and_keys(x64, rng):
    layer = MultiHeadAttention(2, rope=True, use_bias=False, dtype=jnp.float64)
    _, params, _ = layer.init(jax.random.PRNGKey(0), (-1, 4, 8))
    x = rng.normal(size=(1, 4, 8))
    y, _ = layer.apply(params, {}, x, train=False)
    q = np_rope((x @ np.asarray(params["query"]["w"])).reshape(1, 4, 2, 4), np.arange(4))
    k = np_rope((x @ np.asarray(params["key"]["w"])).reshape(1, 4, 2, 4), np.arange(4))
    v = (x @ np.asarray(params["value"]["w"])).reshape(1, 4, 2, 4)
    s = np.einsum("bthd,bshd->bhts", q, k) / 2.0
    w = np.exp(s - s.max(-1, keepdims=True))
    o = np.einsum("bhts,bshd->bthd", w / w.sum(-1, keepdims=True), v).reshape(1, 4, 8)
    np.testing.assert_allclose(y, o @ np.asarray(params["out"]["w"]), rtol=1e-11, atol=1e-11)


def test_sinusoidal_matches_vaswani(x64, rng):
    x = rng.normal(size=(2, 6, 5))
    y, _ = SinusoidalPositions().apply({}, {}, x, train=False)
    assert y.dtype == jnp.float64
    pe = np.zeros((6, 5))
    for p in range(6):
        for i in range(5):
            angle = p / 10000.0 ** (2 * (i // 2) / 5)
            pe[p, i] = np.sin(angle) if i % 2 == 0 else np.cos(angle)
    np.testing.assert_allclose(y, x + pe, rtol=1e-12, atol=1e-12)


def test_learned_positions_adds_its_table_and_refuses_long_sequences(rng):
    model = serial(LearnedPositions(8, name="pos"))
    shape, params, state = model.init(jax.random.PRNGKey(0), (-1, 5, 3))
    assert shape == (-1, 5, 3) and params["pos"]["embedding"].shape == (8, 3)
    x = jnp.asarray(rng.normal(size=(2, 4, 3)), jnp.float32)
    y, _ = model.apply(params, state, x, train=False)
    np.testing.assert_allclose(y, x + params["pos"]["embedding"][:4], rtol=1e-6)
    assert LearnedPositions(8).init(jax.random.PRNGKey(0), (-1, -1, 3))[0] == (-1, -1, 3)  # any length up to 8
    msg = r"LearnedPositions\(8\).*: the sequence has 9 positions, more than max_len=8"
    with pytest.raises(ValueError, match=msg):
        LearnedPositions(8).init(jax.random.PRNGKey(0), (-1, 9, 3))
    with pytest.raises(ValueError, match=msg):
        model.apply(params, state, jnp.ones((2, 9, 3)), train=False)
    with pytest.raises(ValueError, match=r"expected input of shape \[batch, time, features\], got \(2, 3\)"):
        LearnedPositions(8).apply(params["pos"], {}, jnp.ones((2, 3)), train=False)
