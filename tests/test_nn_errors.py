"""Bad input gets an error naming the layer, what it got and what it expected."""

import jax
import jax.numpy as jnp
import pytest

import jaxnet as jn

KEY = jax.random.PRNGKey(0)


def test_dense_rejects_wrong_input_shape():
    layer = jn.Dense(128)
    _, params, state = layer.init(KEY, (-1, 784))
    with pytest.raises(
        ValueError, match=r"Dense\(128\) expected input with last dimension 784, got \(32, 28, 28\); add Flatten\(\)"
    ):
        layer.apply(params, state, jnp.zeros((32, 28, 28)), train=False)
    with pytest.raises(ValueError, match=r"Dense\(128\) expected input with last dimension 784, got \(32, 100\)"):
        jax.jit(lambda x: layer.apply(params, state, x, train=False))(jnp.zeros((32, 100)))


@pytest.mark.parametrize(
    "bad, exc, msg",
    [
        (0, ValueError, r"Dense: n must be a positive int, got 0"),
        (-3, ValueError, r"Dense: n must be a positive int, got -3"),
        (2.0, TypeError, r"Dense: n must be an int, got float 2.0; write 2"),
        ("8", TypeError, r"Dense: n must be a positive int, got '8'"),
        (True, TypeError, r"Dense: n must be a positive int, got True"),
    ],
)
def test_dense_rejects_bad_sizes(bad, exc, msg):
    with pytest.raises(exc, match=msg):
        jn.Dense(bad)


def test_mlp_rejects_bad_sizes_and_activation():
    with pytest.raises(ValueError, match=r"MLP: sizes\[1\] must be a positive int, got 0"):
        jn.MLP([4, 0, 2])
    with pytest.raises(ValueError, match="MLP: sizes must be a non-empty sequence"):
        jn.MLP([])
    with pytest.raises(ValueError, match=r"MLP activation: unknown activation 'rleu'; expected one of .*'relu'"):
        jn.MLP([4, 2], activation="rleu")


def test_empty_serial_and_non_layer_arguments():
    with pytest.raises(ValueError, match=r"serial\(\) needs at least one layer"):
        jn.serial()
    with pytest.raises(TypeError, match=r"serial\(\): argument 1 must be a Layer.*call the constructor, e.g. Relu\(\)"):
        jn.serial(jn.Dense(3), jn.Relu)


def test_missing_or_non_bool_train():
    layer = jn.Dense(2)
    _, params, state = layer.init(KEY, (-1, 3))
    with pytest.raises(TypeError, match=r"Dense\(2\).apply: missing keyword argument train="):
        layer.apply(params, state, jnp.zeros((1, 3)))
    model = jn.MLP([4, 2])
    _, params, state = model.init(KEY, (-1, 3))
    with pytest.raises(TypeError, match=r"serial\(.*\).apply: missing keyword argument train="):
        model.apply(params, state, jnp.zeros((1, 3)))
    with pytest.raises(TypeError, match="train must be a Python bool"):
        model.apply(params, state, jnp.zeros((1, 3)), train=jnp.array(True))


def test_init_rejects_bad_input_shapes():
    with pytest.raises(TypeError, match=r"Dense\(2\).init: input_shape must be a tuple including the batch axis"):
        jn.Dense(2).init(KEY, 3)
    with pytest.raises(
        ValueError, match=r"serial\(3 layers\), layer 0 \(Dense\(4\)\).*last axis of input_shape must be known"
    ):
        jn.MLP([4, 2]).init(KEY, (-1, -1))


def test_params_from_another_model_name_the_mismatch():
    a = jn.MLP([4, 2])
    b = jn.MLP([4, 4, 2])
    _, pa, _sa = a.init(KEY, (-1, 3))
    _, _pb, sb = b.init(KEY, (-1, 3))
    with pytest.raises(ValueError, match=r"serial\(Dense\(4\), .*\): params\['dense_4'\]\['b'\] is missing"):
        b.apply(pa, sb, jnp.zeros((1, 3)), train=False)


def test_unknown_loss_and_bad_labels():
    from jaxnet.nn import losses

    with pytest.raises(ValueError, match="unknown loss 'mse'"):
        losses.get_loss("mse")
    with pytest.raises(TypeError, match="labels must be integers"):
        losses.softmax_cross_entropy_with_integer_labels(jnp.zeros((2, 3)), jnp.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\) for logits of shape \(2, 3\), got \(3,\)"):
        losses.accuracy(jnp.zeros((2, 3)), jnp.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"squared_error: outputs and targets must have the same shape"):
        losses.squared_error(jnp.zeros((2, 3)), jnp.zeros((2, 2)))


def test_bad_activation_hyperparameters():
    with pytest.raises(ValueError, match="LeakyRelu: alpha must be finite"):
        jn.LeakyRelu(float("nan"))
    with pytest.raises(TypeError, match="Elu: learnable must be a bool"):
        jn.Elu(1.0, learnable="yes")
