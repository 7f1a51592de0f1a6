"""Generated datasets (spirals, blobs) and scikit-learn's bundled digits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet.data as D


def test_spirals_shapes_balance_and_geometry():
    x, y = D.spirals(jax.random.PRNGKey(0), 301, noise=0.0)
    assert x.shape == (301, 2) and y.dtype == jnp.int32
    assert np.abs(np.bincount(np.asarray(y)) - 150.5).max() <= 0.5
    r = np.linalg.norm(np.asarray(x), axis=1)
    assert r.min() >= 0.05 - 1e-6 and r.max() <= 1 + 1e-6  # radius is t in [0.05, 1]
    # Without noise the two arms are point reflections of each other: angle offset pi.
    t = r
    angle = np.arctan2(x[:, 1], x[:, 0])
    expected = 2 * np.pi * (1.5 * t + np.asarray(y) / 2)
    np.testing.assert_allclose(np.cos(angle - expected), 1.0, atol=1e-4)


def test_blobs_fixed_centers_statistics():
    centers = np.array([[0.0, 0.0], [10.0, -5.0]])
    x, y = D.blobs(jax.random.PRNGKey(1), 4000, centers, std=0.5)
    x, y = np.asarray(x), np.asarray(y)
    for c in range(2):
        pts = x[y == c]
        # mean of 2000 N(0, 0.25) draws: sd 0.011; 5 sd bound.
        np.testing.assert_allclose(pts.mean(0), centers[c], atol=5 * 0.5 / np.sqrt(2000))
        np.testing.assert_allclose(pts.std(0), 0.5, rtol=0.1)


def test_blobs_random_centers_reproducible_and_validated():
    a = D.blobs(jax.random.PRNGKey(2), 30, 4, n_features=3)
    b = D.blobs(jax.random.PRNGKey(2), 30, 4, n_features=3)
    assert a[0].shape == (30, 3)
    np.testing.assert_array_equal(a[0], b[0])
    with pytest.raises(ValueError, match="std must be a scalar or have shape"):
        D.blobs(jax.random.PRNGKey(0), 10, 3, std=[1.0, 2.0])
    with pytest.raises(ValueError, match="spirals: n must be >= 1, got 0"):
        D.spirals(jax.random.PRNGKey(0), 0)


def test_load_digits_flat_and_images():
    x, y = D.load_digits()
    assert x.shape == (1797, 64) and x.dtype == jnp.float32 and y.dtype == jnp.int32
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    np.testing.assert_array_equal(np.bincount(np.asarray(y)) > 170, True)
    xi, _yi = D.load_digits(return_images=True)
    assert xi.shape == (1797, 8, 8)
    np.testing.assert_array_equal(xi.reshape(1797, 64), x)


def test_load_digits_without_scikit_learn_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"jaxnet\[examples\]"):
        D.load_digits()
