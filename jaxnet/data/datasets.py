"""Small datasets generated from a key (no downloads)."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def xor(dtype=jnp.float32):
    """The four XOR points and their labels: ``x`` of shape [4, 2], ``y`` of shape [4] (int32).

    ``y = 1`` exactly when the two inputs differ.
    """
    x = jnp.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=dtype)
    y = jnp.array([0, 1, 1, 0], dtype=jnp.int32)
    return x, y


def circle(key, n: int, *, radius_range=(3.0, 8.0), extent: float = 3.5, dtype=jnp.float32):
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
