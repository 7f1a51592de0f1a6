"""Random train/validation/test splits from a key, stratified by label (§4.4.1).

Split sizes depend on the labels, so the splits run eagerly (outside ``jax.jit``): they are
done once, before training. The key alone decides the split; the same key gives the same split.

Sizes. ``n_test = round(test * n)`` and ``n_val = round(val * n)``, each at least one sample
when its fraction is positive. With ``stratify=True`` these totals are shared out among the
classes in proportion to the class sizes (largest remainders get the leftover samples), so
every split keeps the class proportions up to one sample per class. The order inside each
returned split is random (not grouped by class).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxnet.types import Array, check_key


def _share(total: int, weights: np.ndarray) -> np.ndarray:
    """Integers ``c_k <= weights_k`` summing to ``total``, proportional to ``weights`` (largest remainders)."""
    quota = total * weights / weights.sum()
    counts = np.floor(quota).astype(np.int64)
    left = total - counts.sum()
    # Leftovers go to the largest fractional parts; a stable sort keeps ties in class order.
    order = np.argsort(-(quota - counts), kind="stable")
    for k in order:
        if left == 0:
            break
        if counts[k] < weights[k]:
            counts[k] += 1
            left -= 1
    return counts


def _check_xy(fn: str, x, y):
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    if x.ndim < 1 or y.ndim < 1:
        raise ValueError(f"{fn}: x and y need a leading sample axis, got shapes {x.shape} and {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{fn}: x and y must have the same number of samples, got {x.shape[0]} and {y.shape[0]}")
    return x, y


def _fraction(fn: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{fn}: {name} must be a fraction in [0, 1), got {value!r}")
    if not 0 <= value < 1:
        raise ValueError(f"{fn}: {name} must be a fraction in [0, 1), got {value!r}")
    return float(value)


def split_indices(
    key: Array, y: ArrayLike, *, sizes: Sequence[int], stratify: bool = True, fn: str = "split_indices"
) -> list[np.ndarray]:
    """Index arrays for consecutive parts of sizes ``sizes`` (the rest forms a final part).

    Args:
      key: a ``jax.random`` key.
      y: labels [n] (used only when ``stratify``).
      sizes: the sizes of the first parts, e.g. ``(n_test, n_val)``; the remainder is the last part.
      stratify: share each part's size among the classes in proportion to their sizes.

    Returns:
      a list of int32 NumPy index arrays, ``len(sizes) + 1`` of them, each in random order.
    """
    check_key("split_indices", key)
    y = np.asarray(y)
    n = y.shape[0]
    perm = np.asarray(jax.random.permutation(key, n))
    part = np.full(n, len(sizes), dtype=np.int64)
    if not stratify:
        start = 0
        for k, size in enumerate(sizes):
            part[perm[start : start + size]] = k
            start += size
    else:
        if y.ndim != 1:
            raise ValueError(
                f"{fn}: stratify=True needs 1-D class labels, got y of shape {y.shape}; "
                "pass stratify=False (or integer labels, not one-hot)"
            )
        classes, inverse = np.unique(y[perm], return_inverse=True)
        class_sizes = np.bincount(inverse, minlength=len(classes))
        remaining = class_sizes.copy()
        per_part = []
        for size in sizes:
            counts = _share(size, remaining)
            per_part.append(counts)
            remaining = remaining - counts
        for c in range(len(classes)):
            members = perm[inverse == c]  # this class's samples, in the key's random order
            start = 0
            for k, counts in enumerate(per_part):
                part[members[start : start + counts[c]]] = k
                start += counts[c]
    # Keep the key's random order inside every part.
    return [perm[part[perm] == k].astype(np.int32) for k in range(len(sizes) + 1)]


def _sizes(fn: str, n: int, fractions) -> list:
    sizes = [max(1, round(float(f) * n)) if f > 0 else 0 for f in fractions]
    if sum(sizes) >= n:
        raise ValueError(
            f"{fn}: the held-out fractions {tuple(fractions)} of n={n} samples leave no "
            f"training sample (held-out sizes {tuple(sizes)}); use more data or smaller fractions"
        )
    return sizes


def train_val_test_split(
    key: Array, x: Array, y: Array, *, val: float = 0.1, test: float = 0.2, stratify: bool = True
) -> tuple[tuple[Array, Array], tuple[Array, Array], tuple[Array, Array]]:
    """Split ``(x, y)`` into training, validation and test parts at random.

    Fit normalization statistics on the training part only, then apply them to the other two.

    Args:
      key: a ``jax.random`` key.
      x: inputs [n, ...].
      y: labels [n] (or targets [n, ...] with ``stratify=False``).
      val: fraction of samples for validation, in ``[0, 1)``.
      test: fraction of samples for testing, in ``[0, 1)``.
      stratify: keep the class proportions in every part.

    Returns:
      ``((x_train, y_train), (x_val, y_val), (x_test, y_test))``.

    Raises:
      ValueError: for mismatched ``x``/``y``, fractions outside ``[0, 1)``, fractions leaving no
        training sample, or ``stratify`` with labels that are not 1-D.
    """
    fn = "train_val_test_split"
    x, y = _check_xy(fn, x, y)
    val = _fraction(fn, "val", val)
    test = _fraction(fn, "test", test)
    n_test, n_val = _sizes(fn, x.shape[0], (test, val))
    i_test, i_val, i_train = split_indices(key, y, sizes=(n_test, n_val), stratify=stratify, fn=fn)
    return (x[i_train], y[i_train]), (x[i_val], y[i_val]), (x[i_test], y[i_test])


def train_test_split(
    key: Array, x: Array, y: Array, test: float = 0.2, *, stratify: bool = True
) -> tuple[tuple[Array, Array], tuple[Array, Array]]:
    """Split ``(x, y)`` into a training and a test (or validation) part at random.

    Args:
      key: a ``jax.random`` key.
      x: inputs [n, ...].
      y: labels [n] (or targets [n, ...] with ``stratify=False``).
      test: fraction of samples held out, in ``(0, 1)``.
      stratify: keep the class proportions in both parts.

    Returns:
      ``((x_train, y_train), (x_test, y_test))``.

    Raises:
      ValueError: as :func:`train_val_test_split`.
    """
    fn = "train_test_split"
    x, y = _check_xy(fn, x, y)
    test = _fraction(fn, "test", test)
    (n_test,) = _sizes(fn, x.shape[0], (test,))
    i_test, i_train = split_indices(key, y, sizes=(n_test,), stratify=stratify, fn=fn)
    return (x[i_train], y[i_train]), (x[i_test], y[i_test])
