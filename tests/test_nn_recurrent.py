"""Recurrent cells, RNN and Bidirectional against NumPy loops of PyTorch's equations in float64.

The references take PyTorch's layouts (``weight_ih`` ``[G*H, in]``, ``weight_hh`` ``[G*H, H]``, two
biases) and the gate orders (i, f, g, o) and (r, z, n), so they also check that PyTorch's weights load
as documented: ``w_i = weight_ih.T``, ``w_h = weight_hh.T``, ``b = bias_ih + bias_hh`` (GRU: both biases).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet.nn import RNN, Bidirectional, Dense, GRUCell, LSTMCell, SimpleRNNCell, initial_carry, serial


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def torch_weights(rng, kind, n_in, h):
    g = {"rnn": 1, "lstm": 4, "gru": 3}[kind]
    return {
        "weight_ih": rng.normal(size=(g * h, n_in)) * 0.5,
        "weight_hh": rng.normal(size=(g * h, h)) * 0.5,
        "bias_ih": rng.normal(size=g * h) * 0.5,
        "bias_hh": rng.normal(size=g * h) * 0.5,
    }


def to_jaxnet(kind, t):
    p = {"w_i": t["weight_ih"].T, "w_h": t["weight_hh"].T}
    if kind == "gru":
        p.update(b_i=t["bias_ih"], b_h=t["bias_hh"])
    else:
        p["b"] = t["bias_ih"] + t["bias_hh"]
    return jax.tree.map(jnp.asarray, p)


def np_step(kind, t, x, carry, activation="tanh"):
    """One step of PyTorch's RNNCell / LSTMCell / GRUCell for one sample; returns (carry, output)."""
    wi, wh, bi, bh = t["weight_ih"], t["weight_hh"], t["bias_ih"], t["bias_hh"]
    if kind == "rnn":
        act = np.tanh if activation == "tanh" else (lambda a: np.maximum(a, 0.0))
        h = act(wi @ x + bi + wh @ carry + bh)
        return h, h
    if kind == "lstm":
        h, c = carry
        hh = len(h)
        gates = wi @ x + bi + wh @ h + bh
        i, f = sigmoid(gates[:hh]), sigmoid(gates[hh : 2 * hh])
        g, o = np.tanh(gates[2 * hh : 3 * hh]), sigmoid(gates[3 * hh :])
        c = f * c + i * g
        h = o * np.tanh(c)
        return (h, c), h
    hh = len(carry)
    a, u = wi @ x + bi, wh @ carry + bh
    r = sigmoid(a[:hh] + u[:hh])
    z = sigmoid(a[hh : 2 * hh] + u[hh : 2 * hh])
    n = np.tanh(a[2 * hh :] + r * u[2 * hh :])
    h = (1 - z) * n + z * carry
    return h, h


def np_run(kind, t, x, length, reverse=False, carry=None, activation="tanh"):
    """One sequence's real steps only (packed), outputs at their positions, zeros after ``length``."""
    h = t["weight_hh"].shape[1]
    if carry is None:
        carry = (np.zeros(h), np.zeros(h)) if kind == "lstm" else np.zeros(h)
    ys = np.zeros((x.shape[0], h))
    order = range(length - 1, -1, -1) if reverse else range(length)
    last = np.zeros(h)
    for i in order:
        carry, ys[i] = np_step(kind, t, x[i], carry, activation)
        last = ys[i]
    return ys, carry, last


CELLS = {"rnn": SimpleRNNCell, "lstm": LSTMCell, "gru": GRUCell}


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_rnn_matches_numpy_loops_with_padding(x64, rng, kind, reverse):
    b, steps, n_in, h = 3, 6, 4, 5
    t = torch_weights(rng, kind, n_in, h)
    params = to_jaxnet(kind, t)
    x = rng.normal(size=(b, steps, n_in))
    lengths = np.array([6, 2, 4])
    mask = np.arange(steps)[None] < lengths[:, None]
    layer = RNN(CELLS[kind](h), reverse=reverse, return_state=True)
    (shape, carry_shape), p0, _ = layer.init(jax.random.PRNGKey(0), (-1, steps, n_in))
    assert shape == (-1, steps, h) and jax.tree.map(np.shape, p0) == jax.tree.map(np.shape, params)
    assert carry_shape == (((-1, h), (-1, h)) if kind == "lstm" else (-1, h))
    (y, final), _ = jax.jit(lambda p, x, m: layer.apply(p, {}, x, train=False, mask=m))(params, x, mask)
    last_layer = RNN(CELLS[kind](h), return_sequences=False, reverse=reverse)
    last, _ = last_layer.apply(params, {}, x, train=False, mask=mask)
    for i in range(b):
        ys, carry, last_i = np_run(kind, t, x[i], lengths[i], reverse)
        np.testing.assert_allclose(y[i], ys, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(last[i], last_i, rtol=1e-12, atol=1e-12)
        for got, want in zip(jax.tree.leaves(final), jax.tree.leaves(carry), strict=True):
            np.testing.assert_allclose(got[i], want, rtol=1e-12, atol=1e-12)


def test_relu_cell_and_given_initial_carry(x64, rng):
    t = torch_weights(rng, "rnn", 3, 4)
    x, h0 = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 4))
    layer = RNN(SimpleRNNCell(4, activation="relu"), return_state=True)
    shapes, _, _ = layer.init(jax.random.PRNGKey(0), ((-1, 5, 3), (-1, 4)))
    assert shapes == ((-1, 5, 4), (-1, 4))
    (y, final), _ = layer.apply(to_jaxnet("rnn", t), {}, (x, h0), train=False)
    for i in range(2):
        ys, carry, _ = np_run("rnn", t, x[i], 5, carry=h0[i], activation="relu")
        np.testing.assert_allclose(y[i], ys, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(final[i], carry, rtol=1e-12, atol=1e-12)


def test_lstm_initial_carry_pair_and_unroll(x64, rng):
    t = torch_weights(rng, "lstm", 3, 4)
    x, h0, c0 = rng.normal(size=(2, 7, 3)), rng.normal(size=(2, 4)), rng.normal(size=(2, 4))
    (y, (h, c)), _ = RNN(LSTMCell(4), unroll=3, return_state=True).apply(
        to_jaxnet("lstm", t), {}, (x, (h0, c0)), train=False
    )
    for i in range(2):
        ys, (hi, ci), _ = np_run("lstm", t, x[i], 7, carry=(h0[i], c0[i]))
        np.testing.assert_allclose(y[i], ys, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(h[i], hi, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(c[i], ci, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("merge", ["concat", "sum"])
def test_bidirectional_matches_two_numpy_runs(x64, rng, merge):
    tf, tb = torch_weights(rng, "gru", 3, 4), torch_weights(rng, "gru", 3, 4)
    layer = Bidirectional(RNN(GRUCell(4)), RNN(GRUCell(4), reverse=True), merge=merge)
    shape, _, _ = layer.init(jax.random.PRNGKey(0), (-1, 5, 3))
    assert shape == (-1, 5, 8 if merge == "concat" else 4)
    params = {"forward": to_jaxnet("gru", tf), "backward": to_jaxnet("gru", tb)}
    x, lengths = rng.normal(size=(2, 5, 3)), np.array([5, 3])
    mask = np.arange(5)[None] < lengths[:, None]
    y, _ = layer.apply(params, {"forward": {}, "backward": {}}, x, train=False, mask=mask)
    for i in range(2):
        yf, _, _ = np_run("gru", tf, x[i], lengths[i])
        yb, _, _ = np_run("gru", tb, x[i], lengths[i], reverse=True)
        want = np.concatenate([yf, yb], -1) if merge == "concat" else yf + yb
        np.testing.assert_allclose(y[i], want, rtol=1e-12, atol=1e-12)


def test_in_serial_with_names_grads_and_default_init(rng):
    model = serial(RNN(LSTMCell(8), name="lstm"), RNN(GRUCell(6), return_sequences=False), Dense(2))
    shape, params, state = model.init(jax.random.PRNGKey(0), (-1, 5, 3))
    assert shape == (-1, 2) and params["lstm"]["w_i"].shape == (3, 32) and params["rnn_1"]["b_h"].shape == (18,)
    assert float(jnp.max(jnp.abs(params["lstm"]["w_h"]))) <= 1 / np.sqrt(8)  # PyTorch's U(-1/sqrt(H), 1/sqrt(H))
    x = jnp.asarray(rng.normal(size=(4, 5, 3)), jnp.float32)

    def loss(p):
        return jnp.sum(model.apply(p, state, x, train=True)[0] ** 2)

    grads = jax.grad(loss)(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).sum()) > 0 for g in jax.tree.leaves(grads))
    assert jax.tree.map(jnp.shape, initial_carry(LSTMCell(8), 4)) == ((4, 8), (4, 8))


def test_cell_step_directly(x64, rng):
    t = torch_weights(rng, "gru", 3, 4)
    x, h = rng.normal(size=(2, 3)), rng.normal(size=(2, 4))
    (h1, y), _ = GRUCell(4).apply(to_jaxnet("gru", t), {}, (h, x), train=False)
    for i in range(2):
        np.testing.assert_allclose(h1[i], np_step("gru", t, x[i], h[i])[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(h1, y)


def test_bad_input():
    layer = RNN(LSTMCell(4))
    msg = r"RNN\(LSTMCell\(4\)\).init expected input of shape \[batch, time, features\], got \(-1, 3\)"
    with pytest.raises(ValueError, match=msg + r"; add a time axis"):
        layer.init(jax.random.PRNGKey(0), (-1, 3))
    _, params, _ = layer.init(jax.random.PRNGKey(0), (-1, 5, 3))
    with pytest.raises(ValueError, match=r"RNN\(LSTMCell\(4\)\) expected input of shape .* got \(2, 3\)"):
        layer.apply(params, {}, jnp.ones((2, 3)), train=False)
    x = jnp.ones((2, 5, 3))
    with pytest.raises(ValueError, match=r"initial carry as a pair \(h, c\) with shapes \(\(2, 4\), \(2, 4\)\), got"):
        layer.apply(params, {}, (x, jnp.zeros((2, 4))), train=False)
    with pytest.raises(ValueError, match=r"got \(\(2, 4\), \(2, 3\)\)"):
        layer.apply(params, {}, (x, (jnp.zeros((2, 4)), jnp.zeros((2, 3)))), train=False)
    with pytest.raises(ValueError, match=r"RNN\(GRUCell\(4\)\).init expected the initial carry as h of shape"):
        RNN(GRUCell(4)).init(jax.random.PRNGKey(0), ((-1, 5, 3), (-1, 5)))
    cell = GRUCell(4)
    _, cp, _ = cell.init(jax.random.PRNGKey(0), (-1, 3))
    with pytest.raises(ValueError, match=r"GRUCell\(4\) expected the carry h of shape \(2, 4\), got \(2, 5\)"):
        cell.apply(cp, {}, (jnp.zeros((2, 5)), jnp.ones((2, 3))), train=False)
    with pytest.raises(ValueError, match=r"GRUCell\(4\).init expected the shape of one step"):
        cell.init(jax.random.PRNGKey(0), (-1, 5, 3))
    with pytest.raises(ValueError, match=r"mask must have shape \[batch\] or \[batch, time\]"):
        layer.apply(params, {}, x, train=False, mask=jnp.ones((2, 4), bool))
    with pytest.raises(TypeError, match=r"RNN: cell must be SimpleRNNCell, LSTMCell or GRUCell, got .*LSTMCell"):
        RNN(LSTMCell)
    with pytest.raises(ValueError, match=r"SimpleRNNCell: activation must be one of \['relu', 'tanh'\], got 'gelu'"):
        SimpleRNNCell(4, activation="gelu")
    with pytest.raises(ValueError, match=r"Bidirectional: backward must be built with reverse=True"):
        Bidirectional(RNN(GRUCell(4)), RNN(GRUCell(4)))
