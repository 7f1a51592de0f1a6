"""The ``mask=`` of every layer's ``apply`` and the ``name=`` key of a layer in ``serial``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet.nn import Dense, Relu, serial
from jaxnet.nn.core import make_layer


def _recording_layer(seen):
    """A layer that records the mask it receives (declares ``uses_mask``)."""

    def init(key, shape):
        return shape, {}, {}

    def apply(params, state, x, *, key, train, mask):
        seen.append(mask)
        return x, state

    return make_layer("Rec()", init, apply, kind="custom", uses_mask=True)


def test_mask_reaches_sublayers_through_serial():
    seen = []
    model = serial(Dense(3), _recording_layer(seen), Relu())
    x = jnp.ones((4, 2))
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 2))
    mask = jnp.array([True, True, False, True])
    model.apply(params, state, x, train=True, mask=mask)
    np.testing.assert_array_equal(seen[-1], mask)
    model.apply(params, state, x, train=True)
    assert seen[-1] is None


def test_layers_that_do_not_use_the_mask_ignore_it():
    layer = Dense(2)
    _, params, state = layer.init(jax.random.PRNGKey(0), (-1, 3))
    x = jnp.arange(12.0).reshape(4, 3)
    y0, _ = layer.apply(params, state, x, train=False)
    y1, _ = layer.apply(params, state, x, train=False, mask=jnp.array([1.0, 0.0, 0.5, 1.0]))
    np.testing.assert_array_equal(y0, y1)


@pytest.mark.parametrize(
    "mask, words",
    [
        (jnp.ones((3,)), r"mask must have shape \[batch\] or \[batch, time\].*\(4,\).*got \(3,\)"),
        (jnp.ones((4, 3, 2)), r"got \(4, 3, 2\)"),
        (jnp.ones((4,), jnp.complex64), "mask must hold bools or real weights"),
        ("yes", "mask must"),
    ],
)
def test_bad_masks_name_the_layer(mask, words):
    layer = Dense(2)
    _, params, state = layer.init(jax.random.PRNGKey(0), (-1, 3))
    with pytest.raises((TypeError, ValueError), match=words) as e:
        layer.apply(params, state, jnp.ones((4, 3)), train=False, mask=mask)
    assert "Dense(2)" in str(e.value)


def test_token_mask_is_accepted_for_sequences():
    layer = Dense(2)
    _, params, state = layer.init(jax.random.PRNGKey(0), (-1, 5, 3))
    y, _ = layer.apply(params, state, jnp.ones((4, 5, 3)), train=False, mask=jnp.ones((4, 5), bool))
    assert y.shape == (4, 5, 2)


def test_scope_keys_params_and_rejects_clashes():
    def named(scope):
        def init(key, shape):
            return shape, {"s": jnp.zeros(())}, {}

        def apply(params, state, x, *, key, train):
            return x + params["s"], state

        return make_layer("Shift()", init, apply, kind="custom", scope=scope)

    model = serial(named("first"), Dense(2), named("last"))
    _, params, _ = model.init(jax.random.PRNGKey(0), (-1, 2))
    assert list(params) == ["first", "dense_1", "last"]
    with pytest.raises(ValueError, match=r"'twice'.*different name="):
        serial(named("twice"), named("twice"))
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        named("has space")
    with pytest.raises(TypeError, match="name must be a string"):
        named(3)
