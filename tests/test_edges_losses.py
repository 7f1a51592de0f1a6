"""Issue 13, items 2, 3 and 6: weighted losses, -inf logits, integer labels out of range."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet.nn import losses as L

NAN, INF = float("nan"), float("inf")


def test_weighted_loss_is_the_weighted_mean():
    # sum(w l) / sum(w): one sample of loss 4 with weight 0.5 is 4, not 2
    assert float(L.squared_error(jnp.array([[2.0]]), jnp.array([[0.0]]), where=jnp.array([0.5]))) == 4.0


def test_weighted_loss_is_invariant_to_scaling_the_weights(x64, rng):
    out, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    w = rng.uniform(0.1, 2.0, size=5)
    per = ((out - y) ** 2).sum(1)
    ref = (w * per).sum() / w.sum()
    for scale in (1.0, 0.01, 300.0):
        got = float(L.squared_error(jnp.asarray(out), jnp.asarray(y), where=jnp.asarray(w * scale)))
        assert got == pytest.approx(ref, rel=1e-12)


def test_weight_zero_selects_out_nan_and_inf():
    out, y = jnp.array([[1.0], [NAN]]), jnp.array([[0.0], [0.0]])
    assert float(L.squared_error(out, y, where=jnp.array([1, 0]))) == 1.0
    assert float(L.squared_error(jnp.array([[1.0], [INF]]), y, where=jnp.array([1.0, 0.0]))) == 1.0
    g = jax.grad(L.squared_error)(out, y, jnp.array([1, 0]))
    np.testing.assert_array_equal(np.asarray(g), [[2.0], [0.0]])  # no NaN leaks into the gradient


@pytest.mark.parametrize(
    "fn, out, y",
    [
        (L.squared_error, [[1.0], [2.0]], [[0.0], [0.0]]),
        (L.mean_squared_error, [[1.0], [2.0]], [[0.0], [0.0]]),
        (L.softmax_cross_entropy_with_integer_labels, [[1.0, 0.0], [0.0, 1.0]], [0, 1]),
        (L.softmax_cross_entropy, [[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]),
        (L.binary_cross_entropy_with_logits, [[1.0], [-1.0]], [1, 0]),
        (L.binary_cross_entropy, [[0.7], [0.2]], [1, 0]),
        (L.accuracy, [[1.0, 0.0], [0.0, 1.0]], [0, 1]),
    ],
)
def test_all_zero_weights_give_zero_not_nan(fn, out, y):
    value, grad = jax.value_and_grad(fn)(jnp.asarray(out), jnp.asarray(y), jnp.zeros(2))
    assert float(value) == 0.0
    assert bool(jnp.all(grad == 0))


def test_negative_weights_raise():
    with pytest.raises(ValueError, match="where must hold finite weights >= 0"):
        L.squared_error(jnp.ones((2, 1)), jnp.zeros((2, 1)), where=jnp.array([1.0, -1.0]))


def test_soft_target_cross_entropy_at_minus_inf_logit():
    value, grad = jax.value_and_grad(L.softmax_cross_entropy)(jnp.array([[0.0, -INF]]), jnp.array([[1.0, 0.0]]))
    assert float(value) == 0.0
    assert bool(jnp.all(jnp.isfinite(grad)))
    np.testing.assert_array_equal(np.asarray(grad), [[0.0, 0.0]])
    # a target on a masked class is infinitely wrong, as it should be
    assert float(L.softmax_cross_entropy(jnp.array([[0.0, -INF]]), jnp.array([[0.5, 0.5]]))) == INF


def test_soft_target_cross_entropy_with_masked_classes_matches_dropping_them(x64, rng):
    z = rng.normal(size=(4, 5))
    t = rng.dirichlet(np.ones(3), size=4)
    masked_z = np.concatenate([z[:, :3], np.full((4, 2), -np.inf)], axis=1)
    padded_t = np.concatenate([t, np.zeros((4, 2))], axis=1)
    got = float(L.softmax_cross_entropy(jnp.asarray(masked_z), jnp.asarray(padded_t)))
    ref = float(L.softmax_cross_entropy(jnp.asarray(z[:, :3]), jnp.asarray(t)))
    assert got == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("label", [-1, 3, 100])
@pytest.mark.parametrize(
    "fn", [L.softmax_cross_entropy_with_integer_labels, L.accuracy], ids=["integer_labels", "accuracy"]
)
def test_labels_out_of_range_raise_on_concrete_input(fn, label):
    with pytest.raises(ValueError, match=rf"label {label} at index 1 is outside \[0, 3\)"):
        fn(jnp.zeros((2, 3)), jnp.array([0, label]))


@pytest.mark.parametrize("label", [-1, 3])
@pytest.mark.parametrize(
    "fn", [L.softmax_cross_entropy_with_integer_labels, L.accuracy], ids=["integer_labels", "accuracy"]
)
def test_labels_out_of_range_are_nan_under_jit(fn, label):
    # NaN for negative and too-large labels alike, so fit's non-finite guard stops on it
    assert np.isnan(float(jax.jit(fn)(jnp.zeros((2, 3)), jnp.array([0, label]))))


def test_label_of_a_weight_zero_sample_is_ignored():
    logits, labels = jnp.zeros((2, 3)), jnp.array([0, -1])
    v = L.softmax_cross_entropy_with_integer_labels(logits, labels, where=jnp.array([1.0, 0.0]))
    assert float(v) == pytest.approx(np.log(3.0))
    v = jax.jit(L.softmax_cross_entropy_with_integer_labels)(logits, labels, jnp.array([1.0, 0.0]))
    assert float(v) == pytest.approx(np.log(3.0))


@pytest.mark.parametrize(
    "fn, args",
    [
        (L.squared_error, (jnp.ones((2, 1), jnp.complex64), jnp.zeros((2, 1)))),
        (L.squared_error, (jnp.ones((2, 1)), jnp.zeros((2, 1), jnp.complex64))),
        (L.softmax_cross_entropy, (jnp.ones((2, 3), jnp.complex64), jnp.zeros((2, 3)))),
        (L.accuracy, (jnp.ones((2, 3), jnp.complex64), jnp.zeros((2,), jnp.int32))),
    ],
)
def test_complex_inputs_raise(fn, args):
    with pytest.raises(TypeError, match="must be real, got complex"):
        fn(*args)
