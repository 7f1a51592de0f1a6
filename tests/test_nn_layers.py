"""Every layer: init/apply shape agreement, NumPy float64 forward references, jit and vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet as jn

BATCH = 5


# (constructor, input feature shape, NumPy reference of the forward pass)
LAYERS = {
    "Dense": (lambda: jn.Dense(3), (4,), lambda p, x: x @ np.asarray(p["w"]) + np.asarray(p["b"])),
    "DenseNoBias": (lambda: jn.Dense(3, use_bias=False), (4,), lambda p, x: x @ np.asarray(p["w"])),
    "Flatten": (jn.Flatten, (2, 3, 2), lambda p, x: x.reshape(x.shape[0], -1)),
    "Sigmoid": (jn.Sigmoid, (6,), lambda p, x: 1 / (1 + np.exp(-x))),
    "Tanh": (jn.Tanh, (6,), lambda p, x: np.tanh(x)),
    "Relu": (jn.Relu, (6,), lambda p, x: np.maximum(x, 0)),
    "LeakyRelu": (lambda: jn.LeakyRelu(0.1), (6,), lambda p, x: np.where(x > 0, x, 0.1 * x)),
    "PRelu": (jn.PRelu, (6,), lambda p, x: np.where(x > 0, x, float(p["alpha"]) * x)),
    "Elu": (lambda: jn.Elu(0.5), (6,), lambda p, x: np.where(x > 0, x, 0.5 * np.expm1(x))),
    "EluLearned": (
        lambda: jn.Elu(0.5, learnable=True),
        (6,),
        lambda p, x: np.where(x > 0, x, float(p["alpha"]) * np.expm1(x)),
    ),
    "Softmax": (
        jn.Softmax,
        (6,),
        lambda p, x: np.exp(x - x.max(-1, keepdims=True)) / np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True),
    ),
    "LogSoftmax": (
        jn.LogSoftmax,
        (6,),
        lambda p, x: x - x.max(-1, keepdims=True) - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)),
    ),
    "Step": (jn.Step, (6,), lambda p, x: (x > 0).astype(float)),
    "Identity": (jn.Identity, (6,), lambda p, x: x),
    "MLP": (
        lambda: jn.MLP([7, 3], "tanh"),
        (4,),
        lambda p, x: (
            np.tanh(x @ np.asarray(p["dense_0"]["w"]) + np.asarray(p["dense_0"]["b"])) @ np.asarray(p["dense_2"]["w"])
            + np.asarray(p["dense_2"]["b"])
        ),
    ),
}


def _setup(name, dtype=jnp.float32):
    make, feat, ref = LAYERS[name]
    layer = make()
    out_shape, params, state = layer.init(jax.random.PRNGKey(1), (-1, *feat))
    params = jax.tree_util.tree_map(lambda a: a.astype(dtype), params)
    x = jax.random.normal(jax.random.PRNGKey(2), (BATCH, *feat), dtype) * 2
    return layer, out_shape, params, state, x, ref


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_forward_matches_numpy_float64(x64, name):
    layer, _out_shape, params, state, x, ref = _setup(name, jnp.float64)
    y, new_state = layer.apply(params, state, x, train=False)
    assert y.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(y), ref(params, np.asarray(x)), rtol=1e-12, atol=1e-13)
    assert jax.tree_util.tree_structure(new_state) == jax.tree_util.tree_structure(state)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_init_shape_equals_apply_shape(name):
    layer, out_shape, params, state, x, _ = _setup(name)
    y, _ = layer.apply(params, state, x, train=True)
    assert out_shape[0] == -1 and out_shape[1:] == y.shape[1:]
    # The same init with a concrete batch size reports it.
    shape2, _, _ = layer.init(jax.random.PRNGKey(1), x.shape)
    assert shape2 == y.shape


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_plain_jit_and_vmap_agree(name):
    layer, _, params, state, x, _ = _setup(name)
    plain, _ = layer.apply(params, state, x, train=False)
    jitted, _ = jax.jit(lambda p, s, x: layer.apply(p, s, x, train=False))(params, state, x)
    # vmap over an outer axis (e.g. several batches, or ensemble members sharing params)
    xs = jnp.stack([x, 2 * x, -x])
    mapped, _ = jax.vmap(lambda x: layer.apply(params, state, x, train=False))(xs)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(plain), rtol=1e-6, atol=1e-6)
    for i, xi in enumerate([x, 2 * x, -x]):
        yi, _ = layer.apply(params, state, xi, train=False)
        np.testing.assert_allclose(np.asarray(mapped[i]), np.asarray(yi), rtol=1e-6, atol=1e-6)


def test_dense_single_example_without_batch_axis():
    layer = jn.Dense(3)
    _, params, state = layer.init(jax.random.PRNGKey(0), (-1, 4))
    x = jnp.arange(4.0)
    y, _ = layer.apply(params, state, x, train=False)
    yb, _ = layer.apply(params, state, x[None], train=False)
    np.testing.assert_allclose(np.asarray(y), np.asarray(yb[0]), rtol=1e-6)


def test_dense_params_and_initializer_by_name():
    _, params, _ = jn.Dense(5, w_init="he_normal", b_init=jn.nn.initializers.constant(0.1)).init(
        jax.random.PRNGKey(0), (-1, 3)
    )
    assert params["w"].shape == (3, 5) and params["b"].shape == (5,)
    np.testing.assert_allclose(np.asarray(params["b"]), 0.1)


def test_prelu_and_learned_elu_have_trainable_alpha():
    for layer in (jn.PRelu(0.25), jn.Elu(1.0, learnable=True)):
        _, params, state = layer.init(jax.random.PRNGKey(0), (-1, 3))
        x = jnp.array([[-1.0, -2.0, 3.0]])
        g = jax.grad(lambda p, layer=layer, state=state, x=x: jnp.sum(layer.apply(p, state, x, train=True)[0]))(params)
        assert float(g["alpha"]) != 0.0


def test_layers_are_deterministic_given_key():
    m = jn.MLP([16, 4])
    _, p1, _ = m.init(jax.random.PRNGKey(5), (-1, 3))
    _, p2, _ = m.init(jax.random.PRNGKey(5), (-1, 3))
    _, p3, _ = m.init(jax.random.PRNGKey(6), (-1, 3))
    for a, b in zip(jax.tree_util.tree_leaves(p1), jax.tree_util.tree_leaves(p2), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(p1["dense_0"]["w"]), np.asarray(p3["dense_0"]["w"]))
    # different layers get different keys
    assert not np.array_equal(np.asarray(p1["dense_0"]["w"][:4, :4]), np.asarray(p1["dense_2"]["w"][:4, :4]))
