"""Small datasets generated from a key (no downloads)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from jaxnet.types import Array, check_key


def xor(dtype: DTypeLike = jnp.float32) -> tuple[Array, Array]:
    """The four XOR points and their labels: ``x`` of shape [4, 2], ``y`` of shape [4] (int32).

    ``y = 1`` exactly when the two inputs differ.
    """
    x = jnp.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=dtype)
    y = jnp.array([0, 1, 1, 0], dtype=jnp.int32)
    return x, y


def circle(
    key: Array,
    n: int,
    *,
    radius_range: tuple[float, float] = (3.0, 8.0),
    extent: float = 3.5,
    dtype: DTypeLike = jnp.float32,
) -> tuple[Array, Array]:
    """The ring data of figure 4.3: points uniform on a square, label 1 iff ``3 <= x^2 + y^2 <= 8``.

    Args:
      key: a ``jax.random`` key.
      n: number of points.
      radius_range: the bounds ``(lo, hi)`` on the *squared* radius for label 1.
      extent: points are drawn uniformly from ``[-extent, extent]^2``.

    Returns:
      ``x`` of shape [n, 2] and integer labels ``y`` of shape [n].

    Raises:
      ValueError: if ``n`` is not a positive integer or the range is inverted.
    """
    check_key("circle", key)
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise ValueError(f"circle: n must be a positive integer, got {n!r}")
    lo, hi = radius_range
    if not lo < hi:
        raise ValueError(f"circle: radius_range must satisfy lo < hi, got {radius_range!r}")
    if extent <= 0:
        raise ValueError(f"circle: extent must be > 0, got {extent!r}")
    x = jax.random.uniform(key, (n, 2), dtype=dtype, minval=-extent, maxval=extent)
    r2 = jnp.sum(x * x, axis=-1)
    y = ((r2 >= lo) & (r2 <= hi)).astype(jnp.int32)
    return x, y


def _check_n(fn: str, n, minimum: int = 1) -> int:
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"{fn}: n must be a Python int, got {n!r}")
    if n < minimum:
        raise ValueError(f"{fn}: n must be >= {minimum}, got {n}")
    return n


def spirals(
    key: Array, n: int, *, n_classes: int = 2, turns: float = 1.5, noise: float = 0.05, dtype: DTypeLike = jnp.float32
) -> tuple[Array, Array]:
    """Interleaved spiral arms, one per class, in the plane.

    Arm ``c`` is ``r (cos(a), sin(a))`` with ``r = t``, ``a = 2 pi (turns * t + c / n_classes)``
    for ``t`` uniform in ``[0.05, 1]``, plus Gaussian noise of standard deviation ``noise``.
    Labels cycle ``0, 1, ..., n_classes - 1``, so the classes differ in size by at most one.

    Args:
      key: a ``jax.random`` key.
      n: number of points (all arms together).
      n_classes: number of arms (>= 2).
      turns: how many full turns each arm makes.
      noise: standard deviation of the additive Gaussian noise (>= 0).

    Returns:
      ``x`` [n, 2] and int32 labels ``y`` [n].

    Raises:
      ValueError: for ``n < 1``, ``n_classes < 2``, ``turns <= 0`` or ``noise < 0``.
    """
    check_key("spirals", key)
    _check_n("spirals", n)
    if not isinstance(n_classes, int) or n_classes < 2:
        raise ValueError(f"spirals: n_classes must be an int >= 2, got {n_classes!r}")
    if not turns > 0:
        raise ValueError(f"spirals: turns must be > 0, got {turns!r}")
    if not noise >= 0:
        raise ValueError(f"spirals: noise must be >= 0, got {noise!r}")
    k_t, k_noise = jax.random.split(key)
    y = jnp.arange(n, dtype=jnp.int32) % n_classes
    t = jax.random.uniform(k_t, (n,), dtype=dtype, minval=0.05, maxval=1.0)
    angle = 2 * jnp.pi * (turns * t + y.astype(dtype) / n_classes)
    x = t[:, None] * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=-1)
    x = x + noise * jax.random.normal(k_noise, (n, 2), dtype=dtype)
    return x.astype(dtype), y


def blobs(
    key: Array,
    n: int,
    centers: int | ArrayLike = 3,
    *,
    std: float | ArrayLike = 1.0,
    n_features: int = 2,
    box: tuple[float, float] = (-10.0, 10.0),
    dtype: DTypeLike = jnp.float32,
) -> tuple[Array, Array]:
    """Isotropic Gaussian clusters: sample ``i`` has label ``i % k`` and is ``N(centers[label], std^2 I)``.

    Args:
      key: a ``jax.random`` key.
      n: number of points.
      centers: either an int ``k`` (the centres are then drawn uniformly from ``box^n_features``
        with the key) or an array of centres of shape [k, d].
      std: standard deviation of every cluster, a float or one per cluster ([k]).
      n_features: dimension ``d`` when ``centers`` is an int.
      box: ``(lo, hi)`` bounds for random centres.

    Returns:
      ``x`` [n, d] and int32 labels ``y`` [n].

    Raises:
      ValueError: for ``n < 1``, a bad ``centers``, a negative ``std`` or an inverted ``box``.
    """
    check_key("blobs", key)
    _check_n("blobs", n)
    k_centers, k_points = jax.random.split(key)
    if isinstance(centers, int) and not isinstance(centers, bool):
        if centers < 1:
            raise ValueError(f"blobs: centers as a count must be >= 1, got {centers}")
        if not isinstance(n_features, int) or n_features < 1:
            raise ValueError(f"blobs: n_features must be an int >= 1, got {n_features!r}")
        lo, hi = box
        if not lo < hi:
            raise ValueError(f"blobs: box must satisfy lo < hi, got {box!r}")
        c = jax.random.uniform(k_centers, (centers, n_features), dtype=dtype, minval=lo, maxval=hi)
    else:
        c = jnp.asarray(centers, dtype=dtype)
        if c.ndim != 2 or c.shape[0] < 1:
            raise ValueError(f"blobs: centers must be an int or an array [k, d], got shape {c.shape}")
    k = c.shape[0]
    s = jnp.asarray(std, dtype=dtype)
    if s.ndim not in (0, 1) or (s.ndim == 1 and s.shape[0] != k):
        raise ValueError(f"blobs: std must be a scalar or have shape [{k}], got shape {s.shape}")
    if bool(jnp.any(s < 0)):
        raise ValueError(f"blobs: std must be >= 0, got {std!r}")
    y = jnp.arange(n, dtype=jnp.int32) % k
    scale = s[y] if s.ndim == 1 else s
    noise = jax.random.normal(k_points, (n, c.shape[1]), dtype=dtype)
    x = c[y] + noise * jnp.reshape(scale, (-1, 1) if s.ndim == 1 else ())
    return x, y


def load_digits(*, dtype: DTypeLike = jnp.float32, return_images: bool = False) -> tuple[Array, Array]:
    """The 8x8 handwritten digits that scikit-learn ships inside its package (1797 images, no download).

    Pixel values (0..16 in the source) are divided by 16, so they lie in ``[0, 1]``.

    Args:
      dtype: floating dtype of the images.
      return_images: give ``x`` as images [1797, 8, 8] instead of flat vectors [1797, 64].

    Returns:
      ``(x, y)``: ``x`` [1797, 64] (or [1797, 8, 8]) in ``dtype``, ``y`` int32 labels 0..9.

    Raises:
      ImportError: when scikit-learn (the ``examples`` extra) is not installed.
    """
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "load_digits needs scikit-learn, which ships the digits data: pip install 'jaxnet[examples]'"
        ) from e
    bunch = _sk_load_digits()
    x = jnp.asarray(bunch.images if return_images else bunch.data, dtype=dtype) / 16
    return x.astype(dtype), jnp.asarray(bunch.target, dtype=jnp.int32)
