"""Data normalization as fit/transform pairs of pure functions (§4.3.1, figures 4.11 and 4.12).

Fit the statistics on the training split only and apply them, unchanged, to the validation
and test splits: ``stats = standardize_fit(x_train)``, then ``standardize(stats, x_val)``.
The statistics are NamedTuples of arrays (pytrees), so they jit, checkpoint and vmap.

Statistics are population moments (divide by ``n``, not ``n - 1``), as in the chapter's
``X_i <- (X_i - mu_i) / sigma_i``. With ``C = U diag(lam) U^T`` the eigendecomposition of the
training covariance (eigenvalues in descending order):

==========================  ==============================================  ========================
transform                   formula                                          covariance afterwards
==========================  ==============================================  ========================
``center``                  ``x - mu``                                       ``C``
``standardize``             ``(x - mu) / sigma``                             correlation matrix
``pca_decorrelate``         ``(x - mu) U``                                   ``diag(lam)``
``pca_whiten``              ``(x - mu) U diag(1 / sqrt(lam + eps))``         ``diag(lam / (lam + eps))``
``zca_whiten``              ``(x - mu) U diag(1 / sqrt(lam + eps)) U^T``     ``U diag(lam / (lam + eps)) U^T``
==========================  ==============================================  ========================

``eps >= 0`` (default 0) regularizes whitening: with ``eps = 0`` the whitened covariance is
exactly the identity; a small positive ``eps`` (e.g. ``1e-2`` for pixel data) keeps
low-variance directions (noise) from being blown up. Directions whose eigenvalue is at most
``rcond * lam_max`` carry no data variance (e.g. a pixel that is always 0): whitening maps
them to 0 instead of dividing by ~0, and the inverse cannot restore them.
ZCA is PCA whitening rotated back to the original axes, so whitened images still look like
images. PCA whitening and ZCA whitening differ only by that final rotation.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxnet.types import Array


class StandardizeStats(NamedTuple):
    """Per-feature mean and scale. ``scale`` is the standard deviation, or 1 for a constant feature."""

    mean: jax.Array
    scale: jax.Array


class PCAStats(NamedTuple):
    """Mean, eigenvectors (columns, by descending eigenvalue), eigenvalues and whitening factors.

    ``whiten_scale[k] = 1 / sqrt(eigenvalues[k] + eps)``, or 0 for a direction without variance;
    ``unwhiten_scale[k] = sqrt(eigenvalues[k] + eps)``.
    """

    mean: jax.Array
    eigenvectors: jax.Array
    eigenvalues: jax.Array
    whiten_scale: jax.Array
    unwhiten_scale: jax.Array


def _check_fit(fn: str, x: Array, *, matrix: bool) -> Array:
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    if matrix and x.ndim != 2:
        raise ValueError(f"{fn}: x must be a matrix [n_samples, n_features], got shape {x.shape}")
    if x.ndim < 1:
        raise ValueError(f"{fn}: x needs a leading sample axis, got a scalar")
    if x.shape[0] == 0 or x.size == 0:
        raise ValueError(f"{fn}: cannot fit on an empty array (shape {x.shape})")
    if x.shape[0] < 2:
        raise ValueError(f"{fn}: needs at least 2 samples to estimate a spread, got 1 (shape {x.shape})")
    return x


def _check_transform(fn: str, stats_mean: Array, x: Array) -> Array:
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(stats_mean.dtype)
    features = stats_mean.shape
    if x.shape[x.ndim - len(features) :] != features or x.ndim < len(features):
        raise ValueError(
            f"{fn}: x has shape {x.shape}, but the statistics were fitted on features of "
            f"shape {features}; expected shape (..., {', '.join(map(str, features))})"
        )
    return x


def standardize_fit(x: Array) -> StandardizeStats:
    """Fit per-feature ``mu = mean(x, 0)`` and ``sigma = std(x, 0)`` (population std).

    A feature that is constant over the samples gets ``sigma = 1``, so it maps to 0, not NaN.

    Args:
      x: training data [n, ...]; every trailing index is one feature.

    Returns:
      :class:`StandardizeStats`.

    Raises:
      ValueError: for an empty ``x`` or a single sample.
    """
    x = _check_fit("standardize_fit", x, matrix=False)
    mean = jnp.mean(x, axis=0)
    std = jnp.std(x, axis=0)
    # An exact test for constancy: a rounding-level std of a constant column must not become a divisor.
    constant = jnp.max(x, axis=0) == jnp.min(x, axis=0)
    return StandardizeStats(mean=mean, scale=jnp.where(constant | (std == 0), 1.0, std).astype(x.dtype))


def center(stats: StandardizeStats, x: Array) -> Array:
    """``x - mu``: zero mean, spread unchanged (the first step of figure 4.11)."""
    x = _check_transform("center", stats.mean, x)
    return x - stats.mean


def standardize(stats: StandardizeStats, x: Array) -> Array:
    """``(x - mu) / sigma`` with training statistics ``stats``.

    Raises:
      ValueError: when ``x``'s feature shape differs from the fitted one.
    """
    x = _check_transform("standardize", stats.mean, x)
    return (x - stats.mean) / stats.scale


def standardize_inverse(stats: StandardizeStats, z: Array) -> Array:
    """``z * sigma + mu``, the inverse of :func:`standardize`."""
    z = _check_transform("standardize_inverse", stats.mean, z)
    return z * stats.scale + stats.mean


def pca_fit(x: Array, *, eps: float = 0.0, rcond: float | None = None) -> PCAStats:
    """Fit the mean and the eigendecomposition ``C = U diag(lam) U^T`` of the covariance of ``x``.

    Args:
      x: training data [n, d].
      eps: added to every eigenvalue before whitening, ``>= 0`` (see the module docstring).
      rcond: eigenvalues ``<= rcond * lam_max`` count as zero; default ``d * machine epsilon``.

    Returns:
      :class:`PCAStats` (eigenvectors with a deterministic sign: the largest entry of each is positive).

    Raises:
      ValueError: for an empty ``x``, a single sample, ``x`` not 2-D, or ``eps``/``rcond`` < 0.
    """
    x = _check_fit("pca_fit", x, matrix=True)
    if not eps >= 0:
        raise ValueError(f"pca_fit: eps must be >= 0, got {eps!r}")
    d = x.shape[1]
    if rcond is None:
        rcond = d * float(jnp.finfo(x.dtype).eps)
    if not rcond >= 0:
        raise ValueError(f"pca_fit: rcond must be >= 0, got {rcond!r}")
    mean = jnp.mean(x, axis=0)
    xc = x - mean
    cov = xc.T @ xc / x.shape[0]
    lam, u = jnp.linalg.eigh(cov)
    lam, u = lam[::-1], u[:, ::-1]
    # eigh's sign of each eigenvector is arbitrary; fix it so that a refit is reproducible.
    pivot = jnp.take_along_axis(u, jnp.argmax(jnp.abs(u), axis=0)[None, :], axis=0)
    u = u * jnp.where(pivot < 0, -1.0, 1.0).astype(u.dtype)
    lam = jnp.maximum(lam, 0.0)  # rounding can make a zero eigenvalue slightly negative
    null = lam <= rcond * lam[0]
    shifted = lam + eps
    whiten = jnp.where(null, 0.0, 1.0 / jnp.sqrt(jnp.where(null, 1.0, shifted)))
    return PCAStats(
        mean=mean,
        eigenvectors=u,
        eigenvalues=lam,
        whiten_scale=whiten.astype(x.dtype),
        unwhiten_scale=jnp.sqrt(shifted).astype(x.dtype),
    )


def pca_decorrelate(stats: PCAStats, x: Array) -> Array:
    """``(x - mu) U``: coordinates on the principal axes; the covariance becomes ``diag(lam)``."""
    x = _check_transform("pca_decorrelate", stats.mean, x)
    return (x - stats.mean) @ stats.eigenvectors


def pca_decorrelate_inverse(stats: PCAStats, z: Array) -> Array:
    """``z U^T + mu``, the inverse of :func:`pca_decorrelate` (``U`` is orthogonal)."""
    z = _check_transform("pca_decorrelate_inverse", stats.mean, z)
    return z @ stats.eigenvectors.T + stats.mean


def pca_whiten(stats: PCAStats, x: Array) -> Array:
    """``(x - mu) U diag(1 / sqrt(lam + eps))``: decorrelated and scaled to unit variance."""
    x = _check_transform("pca_whiten", stats.mean, x)
    return ((x - stats.mean) @ stats.eigenvectors) * stats.whiten_scale


def pca_whiten_inverse(stats: PCAStats, z: Array) -> Array:
    """``z diag(sqrt(lam + eps)) U^T + mu``; exact on directions with variance."""
    z = _check_transform("pca_whiten_inverse", stats.mean, z)
    return (z * stats.unwhiten_scale) @ stats.eigenvectors.T + stats.mean


def zca_whiten(stats: PCAStats, x: Array) -> Array:
    """``(x - mu) U diag(1 / sqrt(lam + eps)) U^T``: whitened, then rotated back onto the input axes."""
    x = _check_transform("zca_whiten", stats.mean, x)
    return (((x - stats.mean) @ stats.eigenvectors) * stats.whiten_scale) @ stats.eigenvectors.T


def zca_whiten_inverse(stats: PCAStats, z: Array) -> Array:
    """``z U diag(sqrt(lam + eps)) U^T + mu``; exact on directions with variance."""
    z = _check_transform("zca_whiten_inverse", stats.mean, z)
    return ((z @ stats.eigenvectors) * stats.unwhiten_scale) @ stats.eigenvectors.T + stats.mean
