"""Every layer takes name= (serial files its params under it) and every layer with params takes dtype."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet import nn

K = jax.random.PRNGKey(0)

# (factory taking name=, input shape)
NAMED = {
    "Dense": (lambda name: nn.Dense(3, name=name), (-1, 4)),
    "Flatten": (lambda name: nn.Flatten(name=name), (-1, 2, 2)),
    "Relu": (lambda name: nn.Relu(name=name), (-1, 4)),
    "Sigmoid": (lambda name: nn.Sigmoid(name=name), (-1, 4)),
    "Tanh": (lambda name: nn.Tanh(name=name), (-1, 4)),
    "LeakyRelu": (lambda name: nn.LeakyRelu(0.2, name=name), (-1, 4)),
    "Step": (lambda name: nn.Step(name=name), (-1, 4)),
    "Identity": (lambda name: nn.Identity(name=name), (-1, 4)),
    "Gelu": (lambda name: nn.Gelu(name=name), (-1, 4)),
    "Silu": (lambda name: nn.Silu(name=name), (-1, 4)),
    "Softplus": (lambda name: nn.Softplus(name=name), (-1, 4)),
    "PRelu": (lambda name: nn.PRelu(name=name), (-1, 4)),
    "Elu": (lambda name: nn.Elu(name=name), (-1, 4)),
    "EluLearned": (lambda name: nn.Elu(learnable=True, name=name), (-1, 4)),
    "Softmax": (lambda name: nn.Softmax(name=name), (-1, 4)),
    "LogSoftmax": (lambda name: nn.LogSoftmax(name=name), (-1, 4)),
    "Dropout": (lambda name: nn.Dropout(0.1, name=name), (-1, 4)),
    "BatchNorm": (lambda name: nn.BatchNorm(name=name), (-1, 4)),
    "LayerNorm": (lambda name: nn.LayerNorm(name=name), (-1, 4)),
    "RMSNorm": (lambda name: nn.RMSNorm(name=name), (-1, 4)),
    "Embedding": (lambda name: nn.Embedding(9, 4, name=name), (-1, 4)),
    "Reshape": (lambda name: nn.Reshape((2, 2), name=name), (-1, 4)),
    "FanOut": (lambda name: nn.FanOut(2, name=name), (-1, 4)),
    "FanInSum": (lambda name: nn.FanInSum(name=name), ((-1, 4), (-1, 4))),
    "FanInConcat": (lambda name: nn.FanInConcat(name=name), ((-1, 4), (-1, 4))),
    "parallel": (lambda name: nn.parallel(nn.Dense(2), nn.Relu(), name=name), ((-1, 4), (-1, 4))),
    "residual": (lambda name: nn.residual(nn.Dense(4), name=name), (-1, 4)),
    "serial": (lambda name: nn.serial(nn.Dense(2), nn.Relu(), name=name), (-1, 4)),
    "MLP": (lambda name: nn.MLP([3, 2], name=name), (-1, 4)),
}


@pytest.mark.parametrize("kind", sorted(NAMED))
def test_every_layer_takes_name_and_serial_files_its_params_under_it(kind):
    make, shape = NAMED[kind]
    layer = make("my.layer-1")
    assert layer.scope == "my.layer-1"
    assert make(None).scope is None
    model = nn.serial(layer, name="outer")
    assert model.scope == "outer"
    _, params, state = model.init(K, shape)
    assert set(params) == {"my.layer-1"} and set(state) == {"my.layer-1"}
    _, own, _ = layer.init(K, shape)
    assert jax.tree_util.tree_structure(params["my.layer-1"]) == jax.tree_util.tree_structure(own)


@pytest.mark.parametrize(
    "bad, error, words",
    [
        ("", ValueError, r"name must be a non-empty string of letters, digits.*got ''"),
        ("a b", ValueError, r"got 'a b'"),
        ("a/b", ValueError, r"got 'a/b'"),
        (3, TypeError, r"name must be a string \(the key of its params\), got 3"),
    ],
)
@pytest.mark.parametrize("kind", ["Dense", "Gelu", "LayerNorm", "Embedding", "residual", "parallel", "MLP"])
def test_bad_names_are_refused_naming_the_layer(kind, bad, error, words):
    with pytest.raises(error, match=words) as e:
        NAMED[kind][0](bad)
    assert (
        str(e.value)
        .split(":")[0]
        .startswith(("Dense", "Gelu", "LayerNorm", "Embedding", "residual", "parallel", "serial"))
    )


def test_equal_names_in_one_model_are_refused():
    with pytest.raises(
        ValueError, match=r"layers 0 \(Dense\(2\)\) and 2 \(LayerNorm\(\)\) would both be filed under 'x'"
    ):
        nn.serial(nn.Dense(2, name="x"), nn.Relu(), nn.LayerNorm(name="x"))
    with pytest.raises(ValueError, match=r"would both be filed under 'dense_0'"):
        nn.parallel(nn.Dense(2), nn.Dense(2, name="dense_0"))


WITH_PARAMS = {
    "Dense": lambda dtype: nn.Dense(3, dtype=dtype),
    "PRelu": lambda dtype: nn.PRelu(dtype=dtype),
    "EluLearned": lambda dtype: nn.Elu(learnable=True, dtype=dtype),
    "BatchNorm": lambda dtype: nn.BatchNorm(dtype=dtype),
    "LayerNorm": lambda dtype: nn.LayerNorm(dtype=dtype),
    "RMSNorm": lambda dtype: nn.RMSNorm(dtype=dtype),
    "Embedding": lambda dtype: nn.Embedding(9, 4, dtype=dtype),
}


@pytest.mark.parametrize("kind", sorted(WITH_PARAMS))
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64, jnp.bfloat16])
def test_every_layer_with_params_takes_dtype(x64, kind, dtype):
    _, params, state = WITH_PARAMS[kind](dtype).init(K, (-1, 4))
    leaves = jax.tree_util.tree_leaves((params, state))
    assert leaves and all(leaf.dtype == dtype for leaf in leaves)


@pytest.mark.parametrize(
    "layer",
    [nn.Dense(3), nn.PRelu(), nn.Elu(learnable=True), nn.BatchNorm(), nn.LayerNorm(), nn.RMSNorm(), nn.Embedding(9, 4)],
    ids=repr,
)
def test_the_default_dtype_is_float32_even_with_x64(x64, layer):
    _, params, state = layer.init(K, (-1, 4))
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves((params, state))} == {jnp.dtype(jnp.float32)}


def test_mlp_builds_a_float64_model_in_one_call(x64):
    model = nn.MLP([8, 8, 3], activation="prelu", batchnorm=True, dtype=jnp.float64)
    _, params, state = model.init(K, (-1, 5))
    leaves = jax.tree_util.tree_leaves((params, state))
    assert {leaf.dtype for leaf in leaves} == {jnp.dtype(jnp.float64)}
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 5)))
    y, new_state = model.apply(params, state, x, train=True)
    assert y.dtype == jnp.float64
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(new_state)} == {jnp.dtype(jnp.float64)}


def test_mlp_default_stays_float32(x64):
    _, params, _ = nn.MLP([4, 2], activation="prelu", batchnorm=True).init(K, (-1, 3))
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(params)} == {jnp.dtype(jnp.float32)}
