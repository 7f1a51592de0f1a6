"""Losses and metrics against float64 NumPy formulas, stability for huge logits, masking."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet.nn import losses as L


@pytest.fixture
def data(rng):
    logits = rng.normal(size=(6, 4)) * 3
    labels = rng.integers(0, 4, size=6)
    onehot = np.eye(4)[labels]
    return logits, labels, onehot


def _np_log_softmax(z):
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


def test_squared_error_is_the_chapters_l2(x64, rng):
    a, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    assert float(L.squared_error(jnp.asarray(a), jnp.asarray(y))) == pytest.approx(
        ((a - y) ** 2).sum(1).mean(), rel=1e-14
    )
    assert float(L.mean_squared_error(jnp.asarray(a), jnp.asarray(y))) == pytest.approx(
        ((a - y) ** 2).mean(), rel=1e-14
    )
    g = jax.grad(L.squared_error)(jnp.asarray(a), jnp.asarray(y))
    np.testing.assert_allclose(np.asarray(g), 2 * (a - y) / 5, rtol=1e-14)


def test_softmax_cross_entropy_forms_agree_with_numpy(x64, data):
    logits, labels, onehot = data
    ref = -(onehot * _np_log_softmax(logits)).sum(-1).mean()
    assert float(L.softmax_cross_entropy(jnp.asarray(logits), jnp.asarray(onehot))) == pytest.approx(ref, rel=1e-13)
    assert float(
        L.softmax_cross_entropy_with_integer_labels(jnp.asarray(logits), jnp.asarray(labels))
    ) == pytest.approx(ref, rel=1e-13)


def test_binary_cross_entropy_both_forms_agree_with_numpy(x64, rng):
    z = rng.normal(size=(8, 1)) * 2
    y = rng.integers(0, 2, size=8)
    p = 1 / (1 + np.exp(-z[:, 0]))
    ref = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()
    assert float(L.binary_cross_entropy_with_logits(jnp.asarray(z), jnp.asarray(y))) == pytest.approx(ref, rel=1e-12)
    assert float(L.binary_cross_entropy(jnp.asarray(p[:, None]), jnp.asarray(y))) == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_losses_are_finite_for_huge_logits(scale):
    z = jnp.array([[scale, 0.0, -scale], [0.0, scale, 1.0]], jnp.float32)
    labels = jnp.array([2, 0])
    for fn, args in [
        (L.softmax_cross_entropy_with_integer_labels, (z, labels)),
        (L.softmax_cross_entropy, (z, jax.nn.one_hot(labels, 3))),
        (L.binary_cross_entropy_with_logits, (z[:, :1], jnp.array([0, 1]))),
        (L.binary_cross_entropy, (jax.nn.sigmoid(z[:, :1]), jnp.array([0, 1]))),
    ]:
        value, grads = jax.value_and_grad(fn)(*args)
        assert bool(jnp.isfinite(value)), fn.__name__
        assert bool(jnp.all(jnp.isfinite(grads))), fn.__name__
    # exact values where they are known: a confidently wrong logit costs about |z|
    v = L.softmax_cross_entropy_with_integer_labels(jnp.array([[1e4, 0.0]]), jnp.array([1]))
    assert float(v) == pytest.approx(1e4, rel=1e-6)
    v = L.binary_cross_entropy_with_logits(jnp.array([[-1e4]]), jnp.array([1]))
    assert float(v) == pytest.approx(1e4, rel=1e-6)


def test_where_masks_samples(x64, data):
    logits, labels, _ = data
    where = np.array([1, 1, 0, 1, 0, 1], bool)
    full = L.softmax_cross_entropy_with_integer_labels(jnp.asarray(logits[where]), jnp.asarray(labels[where]))
    masked = L.softmax_cross_entropy_with_integer_labels(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(where))
    assert float(masked) == pytest.approx(float(full), rel=1e-13)
    with pytest.raises(ValueError, match=r"where must have shape \(6,\)"):
        L.squared_error(jnp.zeros((6, 2)), jnp.zeros((6, 2)), jnp.ones(5))


def test_accuracy_forms(data):
    logits, labels, onehot = data
    expected = (logits.argmax(-1) == labels).mean()
    assert float(L.accuracy(jnp.asarray(logits), jnp.asarray(labels))) == pytest.approx(expected)
    assert float(L.accuracy(jnp.asarray(logits), jnp.asarray(onehot))) == pytest.approx(expected)
    z = jnp.array([[2.0], [-1.0], [0.5]])
    assert float(L.binary_accuracy(z, jnp.array([1, 0, 0]))) == pytest.approx(2 / 3)
    assert float(L.binary_accuracy(jax.nn.sigmoid(z), jnp.array([1, 0, 1]), threshold=0.5)) == pytest.approx(1.0)


def test_binary_cross_entropy_with_logits_gradient_at_zero_logit(x64):
    # A zero-initialised logistic regression starts at z = 0 exactly: the gradient must be sigmoid(0) - y.
    z = jnp.zeros((4, 1))
    y = jnp.array([0, 1, 1, 0])
    g = jax.grad(L.binary_cross_entropy_with_logits)(z, y)
    np.testing.assert_allclose(np.asarray(g[:, 0]), (0.5 - np.asarray(y)) / 4, rtol=1e-14)
