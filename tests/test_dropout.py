"""Dropout: the mask's rate, the expectation of both forms, determinism from the key, edge rates, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet.nn import Dropout, dropout_mask

KEY = jax.random.PRNGKey(0)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_mask_drops_at_the_requested_rate(rate):
    n = 200_000
    mask = dropout_mask(KEY, rate, (400, 500))
    assert mask.dtype == jnp.bool_ and mask.shape == (400, 500)
    kept = float(jnp.mean(mask))
    # Binomial: the kept fraction has standard deviation sqrt(p (1 - p) / n).
    sd = np.sqrt(rate * (1 - rate) / n)
    assert abs(kept - (1 - rate)) < 5 * sd


def test_same_key_same_mask_and_apply_uses_dropout_mask():
    x = jax.random.normal(jax.random.PRNGKey(1), (64, 32))
    layer = Dropout(0.3)
    _, params, state = layer.init(KEY, (-1, 32))
    k = jax.random.PRNGKey(5)
    y1, _ = layer.apply(params, state, x, key=k, train=True)
    y2, _ = jax.jit(lambda x, k: layer.apply(params, state, x, key=k, train=True))(x, k)
    np.testing.assert_array_equal(y1, y2)
    mask = dropout_mask(k, 0.3, x.shape)
    np.testing.assert_allclose(y1, np.where(mask, np.asarray(x) / 0.7, 0.0), rtol=1e-6)
    y3, _ = layer.apply(params, state, x, key=jax.random.PRNGKey(6), train=True)
    assert not np.array_equal(np.asarray(y3) != 0, np.asarray(mask))


@pytest.mark.parametrize("rate", [0.25, 0.5])
def test_both_forms_preserve_the_expectation(rate):
    n = 4000
    x = jnp.linspace(-2.0, 3.0, 16)
    keys = jax.random.split(jax.random.PRNGKey(3), n)

    def samples(layer):
        return jax.vmap(lambda k: layer.apply({}, {}, x[None], key=k, train=True)[0][0])(keys)

    keep = 1 - rate
    for layer, eval_scale, train_scale in [(Dropout(rate), 1.0, 1 / keep), (Dropout(rate, mode="chapter"), keep, 1.0)]:
        ys = samples(layer)
        evaluated, _ = layer.apply({}, {}, x[None], train=False)
        np.testing.assert_allclose(evaluated[0], eval_scale * x, rtol=1e-6)
        # Each element is train_scale * x * Bernoulli(keep): sd of the mean over n samples below.
        sd = np.abs(np.asarray(x)) * train_scale * np.sqrt(keep * (1 - keep) / n)
        err = np.abs(np.asarray(ys.mean(0)) - np.asarray(evaluated[0]))
        np.testing.assert_array_less(err, 5 * sd + 1e-6)
    # Same key, same mask: the two forms differ by exactly the factor 1 - rate in training.
    inv, _ = Dropout(rate).apply({}, {}, x[None], key=keys[0], train=True)
    chap, _ = Dropout(rate, mode="chapter").apply({}, {}, x[None], key=keys[0], train=True)
    np.testing.assert_allclose(chap, keep * inv, rtol=1e-6)


def test_gradient_is_the_scaled_mask():
    x = jax.random.normal(jax.random.PRNGKey(1), (8, 10))
    k = jax.random.PRNGKey(2)
    g = jax.grad(lambda x: jnp.sum(Dropout(0.4).apply({}, {}, x, key=k, train=True)[0]))(x)
    np.testing.assert_allclose(g, np.where(dropout_mask(k, 0.4, x.shape), 1 / 0.6, 0.0), rtol=1e-6)


def test_rate_zero_is_identity_and_rate_one_gives_zeros_with_finite_gradients():
    x = jax.random.normal(jax.random.PRNGKey(1), (8, 10))
    for mode in ("inverted", "chapter"):
        y0, _ = Dropout(0.0, mode=mode).apply({}, {}, x, key=KEY, train=True)
        np.testing.assert_array_equal(y0, x)
        y0e, _ = Dropout(0.0, mode=mode).apply({}, {}, x, train=False)
        np.testing.assert_array_equal(y0e, x)
        layer = Dropout(1.0, mode=mode)
        y1, _ = layer.apply({}, {}, x, key=KEY, train=True)
        np.testing.assert_array_equal(y1, np.zeros((8, 10)))
        g = jax.grad(lambda x, layer=layer: jnp.sum(layer.apply({}, {}, x, key=KEY, train=True)[0]))(x)
        assert np.all(np.isfinite(g))
        np.testing.assert_array_equal(g, np.zeros((8, 10)))
    assert not dropout_mask(KEY, 1.0, (100,)).any()
    assert dropout_mask(KEY, 0.0, (100,)).all()


def test_eval_mode_is_deterministic_and_needs_no_key():
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 5))
    y, state = Dropout(0.5).apply({}, {}, x, train=False)
    np.testing.assert_array_equal(y, x)
    assert state == {}
    y_chapter, _ = Dropout(0.5, mode="chapter").apply({}, {}, x, key=KEY, train=False)
    np.testing.assert_allclose(y_chapter, 0.5 * x)


def test_layer_description():
    layer = Dropout(0.25, mode="chapter")
    assert layer.kind == "dropout" and layer.needs_key
    assert dict(layer.config) == {"rate": 0.25, "mode": "chapter"}
    assert layer.init(KEY, (-1, 3, 4)) == ((-1, 3, 4), {}, {})


@pytest.mark.parametrize(
    "args, exc, msg",
    [
        ((1.5,), ValueError, r"Dropout: rate must be <= 1.0, got 1.5"),
        ((-0.1,), ValueError, r"Dropout: rate must be >= 0.0, got -0.1"),
        ((float("nan"),), ValueError, r"Dropout: rate must be finite"),
        (("0.5",), TypeError, r"Dropout: rate must be a real number in \[0, 1\], got '0.5'"),
        ((0.5, "scaled"), ValueError, r"Dropout: mode must be one of \['inverted', 'chapter'\], got 'scaled'"),
    ],
)
def test_bad_arguments(args, exc, msg):
    with pytest.raises(exc, match=msg):
        Dropout(*args)


def test_training_without_a_key_says_to_pass_one():
    with pytest.raises(ValueError, match=r"Dropout\(0.5\).apply: train=True needs a random key.*pass key="):
        Dropout(0.5).apply({}, {}, jnp.ones((2, 3)), train=True)
    with pytest.raises(ValueError, match=r"dropout_mask: rate must be <= 1.0, got 2"):
        dropout_mask(KEY, 2, (3,))
