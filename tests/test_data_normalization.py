"""§4.3.1 normalization: standardize, PCA decorrelation, PCA and ZCA whitening, fitted on training data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import jaxnet.data as D


def _correlated(rng, n=500, d=4):
    """Gaussian data with a non-trivial mean and a full-rank, strongly correlated covariance."""
    a = rng.normal(size=(d, d)) + 2 * np.eye(d)
    return rng.normal(size=(n, d)) @ a + rng.normal(size=d) * 5


def _cov(z):
    z = np.asarray(z, dtype=np.float64)
    zc = z - z.mean(0)
    return zc.T @ zc / z.shape[0]


def test_standardize_matches_numpy_and_round_trips(x64, rng):
    x = _correlated(rng)
    stats = D.standardize_fit(x)
    np.testing.assert_allclose(stats.mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.scale, x.std(0), rtol=1e-12)
    z = np.asarray(D.standardize(stats, x))
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(0), 1, rtol=1e-12)
    np.testing.assert_allclose(D.center(stats, x), x - x.mean(0), atol=1e-12)
    np.testing.assert_allclose(D.standardize_inverse(stats, z), x, rtol=1e-12, atol=1e-12)


def test_standardize_constant_feature_gives_zero_not_nan():
    x = jnp.stack([jnp.linspace(0.0, 1.0, 10), jnp.full((10,), 0.1)], axis=1)  # 0.1 is inexact in binary
    stats = D.standardize_fit(x)
    z = D.standardize(stats, x)
    assert bool(jnp.all(jnp.isfinite(z)))
    assert float(stats.scale[1]) == 1.0
    np.testing.assert_allclose(z[:, 1], 0.0, atol=1e-6)


def test_standardize_per_pixel_on_image_shaped_data(rng):
    x = rng.normal(size=(50, 3, 2)) * np.arange(1, 7).reshape(3, 2)
    stats = D.standardize_fit(x)
    assert stats.mean.shape == (3, 2)
    z = np.asarray(D.standardize(stats, x))
    np.testing.assert_allclose(z.std(0), 1, rtol=1e-5)


def test_pca_whitening_gives_identity_covariance(x64, rng):
    x = _correlated(rng)
    stats = D.pca_fit(x)
    c = _cov(x)
    lam = np.linalg.eigvalsh(c)[::-1]
    np.testing.assert_allclose(stats.eigenvalues, lam, rtol=1e-10)
    np.testing.assert_allclose(_cov(D.pca_whiten(stats, x)), np.eye(4), atol=1e-8)
    np.testing.assert_allclose(_cov(D.zca_whiten(stats, x)), np.eye(4), atol=1e-8)
    dec = _cov(D.pca_decorrelate(stats, x))
    np.testing.assert_allclose(dec, np.diag(lam), atol=1e-8 * lam[0])
    # Whitened data has zero mean too.
    np.testing.assert_allclose(np.asarray(D.pca_whiten(stats, x)).mean(0), 0, atol=1e-10)


def test_zca_is_symmetric_and_closest_to_the_input(x64, rng):
    """ZCA = C^{-1/2} (x - mu): its matrix is symmetric (PCA whitening's is not, in general)."""
    x = _correlated(rng)
    stats = D.pca_fit(x)
    w_zca = np.asarray(D.zca_whiten(stats, np.eye(4) + np.asarray(stats.mean)))
    np.testing.assert_allclose(w_zca, w_zca.T, atol=1e-10)
    lam, u = np.linalg.eigh(_cov(x))
    np.testing.assert_allclose(w_zca, u @ np.diag(lam**-0.5) @ u.T, rtol=1e-8, atol=1e-10)


def test_inverses_round_trip(x64, rng):
    x = _correlated(rng)
    stats = D.pca_fit(x, eps=0.1)
    for fwd, inv in [
        (D.pca_decorrelate, D.pca_decorrelate_inverse),
        (D.pca_whiten, D.pca_whiten_inverse),
        (D.zca_whiten, D.zca_whiten_inverse),
    ]:
        np.testing.assert_allclose(inv(stats, fwd(stats, x)), x, rtol=1e-10, atol=1e-10)


def test_eps_shrinks_the_whitened_variance_as_documented(x64, rng):
    x = _correlated(rng)
    eps = 0.5
    stats = D.pca_fit(x, eps=eps)
    lam = np.asarray(stats.eigenvalues)
    np.testing.assert_allclose(_cov(D.pca_whiten(stats, x)), np.diag(lam / (lam + eps)), atol=1e-10)


def test_rank_deficient_directions_are_dropped_not_blown_up(x64, rng):
    base = rng.normal(size=(200, 2))
    x = np.concatenate([base, base @ np.array([[1.0], [2.0]]), np.zeros((200, 1))], axis=1)  # rank 2 in R^4
    stats = D.pca_fit(x)
    w = np.asarray(D.pca_whiten(stats, x))
    assert np.all(np.isfinite(w))
    np.testing.assert_allclose(_cov(w), np.diag([1.0, 1.0, 0.0, 0.0]), atol=1e-8)


def test_validation_and_test_use_training_statistics(x64, rng):
    x = _correlated(rng, n=300)
    train, test = x[:200], x[200:] * 3.0 + 100.0  # its own statistics would differ a lot
    z = np.asarray(D.standardize(D.standardize_fit(train), test))
    np.testing.assert_allclose(z, (test - train.mean(0)) / train.std(0), rtol=1e-12)
    assert np.all(z.mean(0) > 10)  # not re-centred on the test set
    # ZCA's matrix C^{-1/2} does not depend on eigenvector signs, so NumPy gives a direct reference.
    lam, u = np.linalg.eigh(_cov(train))
    reference = (test - train.mean(0)) @ u @ np.diag(lam**-0.5) @ u.T
    w = np.asarray(D.zca_whiten(D.pca_fit(train), test))
    np.testing.assert_allclose(w, reference, rtol=1e-9, atol=1e-9)
    assert np.abs(_cov(w) - np.eye(4)).max() > 1.0  # the test set alone is not white under train stats


def test_stats_are_pytrees_and_fit_jits(rng):
    x = jnp.asarray(_correlated(rng), jnp.float32)
    stats = jax.jit(D.pca_fit)(x)
    assert isinstance(stats, D.PCAStats)
    assert len(jax.tree_util.tree_leaves(stats)) == 5
    np.testing.assert_allclose(jax.jit(D.pca_whiten)(stats, x), D.pca_whiten(D.pca_fit(x), x), atol=1e-4)


@pytest.mark.parametrize("fit", [D.standardize_fit, D.pca_fit])
def test_fit_rejects_empty_and_single_sample(fit):
    with pytest.raises(ValueError, match="empty"):
        fit(jnp.zeros((0, 3)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        fit(jnp.ones((1, 3)))


def test_transform_rejects_other_feature_count(rng):
    x = rng.normal(size=(20, 3))
    with pytest.raises(ValueError, match=r"standardize: x has shape \(5, 4\).*\(3,\)"):
        D.standardize(D.standardize_fit(x), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="zca_whiten: x has shape"):
        D.zca_whiten(D.pca_fit(x), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="pca_fit: x must be a matrix"):
        D.pca_fit(np.zeros((5, 2, 2)))
    with pytest.raises(ValueError, match="eps must be >= 0"):
        D.pca_fit(x, eps=-1.0)


@settings(max_examples=15, deadline=None)
@given(d=st.sampled_from([2, 3]), seed=st.integers(0, 2**16), scale=st.floats(1e-2, 1e3))
def test_property_whitening_and_round_trips(d, seed, scale):
    """For any well-conditioned sample, whitening gives the identity and every inverse undoes its transform.

    Only two shapes, so that the eager ops compile twice, not once per example.
    """
    n = 24
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(n, d)) @ (rng.normal(size=(d, d)) + 3 * np.eye(d)) * scale + rng.normal(size=d)
        assume(np.linalg.cond(_cov(x)) < 1e6)
        stats = D.pca_fit(x)
        np.testing.assert_allclose(_cov(D.pca_whiten(stats, x)), np.eye(d), atol=1e-8)
        np.testing.assert_allclose(D.zca_whiten_inverse(stats, D.zca_whiten(stats, x)), x, rtol=1e-8, atol=1e-8 * scale)
        s = D.standardize_fit(x)
        np.testing.assert_allclose(D.standardize_inverse(s, D.standardize(s, x)), x, rtol=1e-10, atol=1e-10 * scale)
    finally:
        jax.config.update("jax_enable_x64", previous)
