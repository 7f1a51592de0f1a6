"""§4.1.3 XOR (by hand and learned) and the circle data of figure 4.3."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet as jn
from jaxnet.nn import losses


def test_hand_weighted_xor_reproduces_every_column():
    t = {k: np.asarray(v) for k, v in jn.nn.xor_table().items()}
    np.testing.assert_array_equal(t["x1"], [0, 0, 1, 1])
    np.testing.assert_array_equal(t["x2"], [0, 1, 0, 1])
    np.testing.assert_array_equal(t["h1"], [0, 1, 1, 1])
    np.testing.assert_array_equal(t["h2"], [0, 0, 0, 1])
    # h1 - h2 - 0.5; the chapter prints -1.5 in the last row, but 1 - 1 - 0.5 = -0.5.
    np.testing.assert_array_equal(t["z"], [-0.5, 0.5, 0.5, -0.5])
    np.testing.assert_array_equal(t["y"], [0, 1, 1, 0])
    np.testing.assert_array_equal(t["y"], np.logical_xor(t["x1"], t["x2"]).astype(float))


def test_hand_weighted_xor_is_made_of_dense_and_step_layers():
    model, params, state = jn.nn.xor_network()
    assert [layer.kind for layer in model.layers] == ["dense", "activation", "dense", "activation"]
    assert [layer.config.get("fn") for layer in model.layers[1::2]] == ["step", "step"]
    x, y = jn.data.xor()
    out, _ = model.apply(params, state, x, train=False)
    np.testing.assert_array_equal(np.asarray(out[:, 0]), np.asarray(y))


def _train_many(model, x, y, seeds, steps, lr, loss=losses.softmax_cross_entropy_with_integer_labels):
    """Train one copy per seed as one vmapped, scanned program."""
    opt = jn.optim.sgd(lr)
    step = jn.train.train_step_fn(model, loss, opt)

    def run(seed):
        key = jax.random.PRNGKey(seed)
        _, params, state = model.init(key, (-1, x.shape[1]))
        carry = (params, state, opt.init(params))

        def body(c, k):
            p, s, o, _ = step(*c, (x, y), k)
            return (p, s, o), None

        (params, state, _), _ = jax.lax.scan(body, carry, jax.random.split(key, steps))
        return params, state

    return jax.jit(jax.vmap(run))(jnp.asarray(seeds))


def test_mlp_learns_xor_for_at_least_9_of_10_seeds():
    x, y = jn.data.xor()
    model = jn.MLP([8, 2], "tanh")
    params, state = _train_many(model, x, y, list(range(10)), steps=500, lr=0.5)
    acc = jax.vmap(lambda p, s: losses.accuracy(model.apply(p, s, x, train=False)[0], y))(params, state)
    assert int(jnp.sum(acc == 1.0)) >= 9, np.asarray(acc)


def test_circle_generator_labels_and_determinism():
    x, y = jn.data.circle(jax.random.PRNGKey(0), 5000)
    assert x.shape == (5000, 2) and y.shape == (5000,) and y.dtype == jnp.int32
    r2 = np.sum(np.asarray(x, np.float64) ** 2, axis=1)
    np.testing.assert_array_equal(np.asarray(y), ((r2 >= 3) & (r2 <= 8)).astype(int))
    # ring area pi*(8-3) over the square's area 7^2
    assert abs(float(y.mean()) - np.pi * 5 / 49) < 4 * np.sqrt(0.25 / 5000)
    x2, _ = jn.data.circle(jax.random.PRNGKey(0), 5000)
    np.testing.assert_array_equal(np.asarray(x), np.asarray(x2))
    with pytest.raises(ValueError, match="circle: n must be a positive integer, got 0"):
        jn.data.circle(jax.random.PRNGKey(0), 0)


def test_small_mlp_reaches_97_percent_on_held_out_circle_points():
    x, y = jn.data.circle(jax.random.PRNGKey(2), 2000)
    xt, yt = jn.data.circle(jax.random.PRNGKey(3), 2000)
    model = jn.MLP([32, 32, 2], "relu")
    params, state = _train_many(model, x, y, [4], steps=3000, lr=0.1)
    params, state = jax.tree_util.tree_map(lambda a: a[0], (params, state))
    out, _ = model.apply(params, state, xt, train=False)
    assert float(losses.accuracy(out, yt)) >= 0.97


def test_logistic_regression_is_one_dense_layer_and_separates_a_line():
    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (400, 2))
    y = (x[:, 0] + 2 * x[:, 1] > 0.3).astype(jnp.int32)
    model = jn.LogisticRegression(2)
    assert [layer.kind for layer in model.layers] == ["dense"]
    params, state = _train_many(model, x, y, [0], steps=500, lr=1.0, loss=losses.binary_cross_entropy_with_logits)
    params, state = jax.tree_util.tree_map(lambda a: a[0], (params, state))
    out, _ = model.apply(params, state, x, train=False)
    assert float(losses.binary_accuracy(out, y)) >= 0.97
    probs = jn.LogisticRegression(2, probabilities=True)
    assert [layer.kind for layer in probs.layers] == ["dense", "activation"]
    assert [layer.kind for layer in jn.LogisticRegression(5, probabilities=True).layers] == ["dense", "softmax"]
