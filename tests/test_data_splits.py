"""Stratified train/validation/test splits from a key."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet.data as D


def _labelled(n_per_class=(50, 30, 20)):
    y = np.concatenate([np.full(k, c) for c, k in enumerate(n_per_class)]).astype(np.int32)
    x = np.arange(y.size, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    return jnp.asarray(x), jnp.asarray(y)


def test_three_way_split_is_a_partition_with_class_proportions():
    x, y = _labelled()
    (xtr, ytr), (xv, yv), (xte, yte) = D.train_val_test_split(jax.random.PRNGKey(0), x, y, val=0.1, test=0.2)
    assert (len(ytr), len(yv), len(yte)) == (70, 10, 20)
    ids = np.concatenate([np.asarray(a[:, 0]) for a in (xtr, xv, xte)]).astype(int)
    np.testing.assert_array_equal(np.sort(ids), np.arange(100))  # disjoint and complete
    for xs, ys in ((xtr, ytr), (xv, yv), (xte, yte)):
        np.testing.assert_array_equal(np.asarray(y)[np.asarray(xs[:, 0]).astype(int)], ys)  # pairs aligned
    np.testing.assert_array_equal(np.bincount(np.asarray(yte)), [10, 6, 4])
    np.testing.assert_array_equal(np.bincount(np.asarray(yv)), [5, 3, 2])


def test_uneven_classes_stay_within_one_sample_of_proportional():
    x, y = _labelled((37, 23, 11, 5))
    (_, _ytr), (_, yte) = D.train_test_split(jax.random.PRNGKey(1), x, y, test=0.3)
    n_test = round(0.3 * 76)
    assert len(yte) == n_test
    want = np.array([37, 23, 11, 5]) * n_test / 76
    assert np.all(np.abs(np.bincount(np.asarray(yte), minlength=4) - want) < 1)


def test_same_key_same_split_other_key_other_split_and_order_shuffled():
    x, y = _labelled()
    a = D.train_test_split(jax.random.PRNGKey(3), x, y)
    b = D.train_test_split(jax.random.PRNGKey(3), x, y)
    c = D.train_test_split(jax.random.PRNGKey(4), x, y)
    np.testing.assert_array_equal(a[1][0], b[1][0])
    assert not np.array_equal(np.asarray(a[1][0]), np.asarray(c[1][0]))
    assert not np.all(np.diff(np.asarray(a[0][1])) >= 0)  # not grouped by class


def test_unstratified_split_works_for_regression_targets():
    x = jnp.arange(20.0)[:, None]
    y = jnp.arange(20.0)[:, None] * 2
    (xtr, _ytr), (xte, yte) = D.train_test_split(jax.random.PRNGKey(0), x, y, test=0.25, stratify=False)
    assert xtr.shape == (15, 1) and yte.shape == (5, 1)
    np.testing.assert_array_equal(yte, xte * 2)
    with pytest.raises(ValueError, match="stratify=True needs 1-D class labels"):
        D.train_test_split(jax.random.PRNGKey(0), x, y)


def test_bad_fractions_and_shapes_raise():
    x, y = _labelled()
    with pytest.raises(ValueError, match=r"test must be a fraction in \[0, 1\), got 1.5"):
        D.train_test_split(jax.random.PRNGKey(0), x, y, test=1.5)
    with pytest.raises(ValueError, match="leave no training sample"):
        D.train_val_test_split(jax.random.PRNGKey(0), x, y, val=0.5, test=0.5)
    with pytest.raises(ValueError, match="same number of samples, got 100 and 99"):
        D.train_test_split(jax.random.PRNGKey(0), x, y[:99])
