"""Losses and metrics. Every loss maps a batch to the mean per-sample loss.

All losses take ``(outputs, targets, where=None)``. ``where`` is an optional
per-sample weight or mask (bools, or real weights ``>= 0``) of the per-sample loss's shape
(``[batch]``; ``[batch, time]`` for per-token losses): the loss becomes the weighted mean
``sum_i where_i l_i / sum_i where_i``, which does not change when every weight is scaled.
A sample of weight 0 contributes nothing, even when its loss is NaN or infinite (it is
selected out, not multiplied by 0), and its gradient is exactly 0. When every weight is 0
the loss is 0 (there is nothing to average), never NaN.

Integer class labels must lie in ``[0, classes)``. On concrete input a label outside that
range raises a ``ValueError`` naming it; inside ``jax.jit`` (where values are unknown at
trace time) such a sample's loss and accuracy are NaN, for negative and too-large labels
alike, so that ``fit``'s non-finite guard stops on it instead of reading label -1 as the
last class.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxnet.types import Array


def _concrete(a) -> bool:
    return not isinstance(a, jax.core.Tracer)


def _check_real_array(name: str, what: str, a):
    """``a`` as an array of bools, ints or floats; complex or non-numeric input raises ``TypeError``."""
    try:
        a = jnp.asarray(a)
    except TypeError:
        raise TypeError(f"{name}: {what} must be an array of numbers, got {type(a).__name__}") from None
    if jnp.issubdtype(a.dtype, jnp.complexfloating):
        raise TypeError(f"{name}: {what} must be real, got complex dtype {a.dtype}")
    if not (a.dtype == jnp.bool_ or jnp.issubdtype(a.dtype, jnp.number)):
        raise TypeError(f"{name}: {what} must be an array of numbers, got dtype {a.dtype}")
    return a


def _outputs(name: str, outputs):
    """The model's outputs as a real floating array (ints are promoted)."""
    outputs = _check_real_array(name, "outputs", outputs)
    if not jnp.issubdtype(outputs.dtype, jnp.floating):
        outputs = outputs.astype(jnp.promote_types(outputs.dtype, jnp.float32))
    return outputs


def _weights(name: str, where, shape):
    """``where`` checked against the per-sample ``shape``: an array, its values >= 0 when concrete.

    A ``where`` over the leading axes only (``[batch]`` for per-token losses ``[batch, time]``, as
    the padding mask ``evaluate`` and ``fit`` build) weighs every loss of its sample alike.
    """
    where = _check_real_array(name, "where", where)
    if 0 < where.ndim < len(shape) and where.shape == tuple(shape[: where.ndim]):
        where = jnp.broadcast_to(where.reshape(where.shape + (1,) * (len(shape) - where.ndim)), tuple(shape))
    if where.shape != tuple(shape):
        raise ValueError(f"{name}: where must have shape {tuple(shape)} (one weight per sample), got {where.shape}")
    if _concrete(where) and where.dtype != jnp.bool_:
        wn = np.asarray(where)
        if not np.all(np.isfinite(wn)) or np.any(wn < 0):
            raise ValueError(f"{name}: where must hold finite weights >= 0, got {wn.ravel()[:8].tolist()}")
    return where


def _reduce(name: str, per_sample, where):
    if where is None:
        return jnp.mean(per_sample)
    w = _weights(name, where, per_sample.shape).astype(per_sample.dtype)
    real = w > 0
    total = jnp.sum(w)
    num = jnp.sum(jnp.where(real, w * jnp.where(real, per_sample, 0), 0))
    some = total > 0
    return jnp.where(some, num / jnp.where(some, total, 1), jnp.zeros((), per_sample.dtype))


def _drop_masked(where, *arrays):
    """Zero the rows of ``arrays`` whose weight is 0, so that a NaN there cannot reach a gradient.

    ``where`` covers the arrays' leading axes; shapes that do not fit are left for
    :func:`_reduce` to report.
    """
    if where is None:
        return arrays
    try:
        w = jnp.asarray(where)
    except TypeError:  # not an array of numbers: _reduce names it
        return arrays
    out = []
    for a in arrays:
        if w.ndim <= a.ndim and a.shape[: w.ndim] == w.shape:
            real = (w > 0).reshape(w.shape + (1,) * (a.ndim - w.ndim))
            a = jnp.where(real, a, jnp.zeros((), a.dtype))
        out.append(a)
    return tuple(out)


def _sum_features(v):
    return jnp.sum(v.reshape((*v.shape[:1], -1)), axis=-1) if v.ndim > 1 else v


def _check_same_shape(name: str, outputs, targets):
    if outputs.shape != targets.shape:
        raise ValueError(
            f"{name}: outputs and targets must have the same shape, got {outputs.shape} and {targets.shape}"
        )


def squared_error(outputs: Array, targets: Array, where: Array | None = None) -> Array:
    """The chapter's l2 loss: ``L = mean_i sum_j (a_ij - y_ij)^2``.

    Summed over the output features of each sample, averaged over the batch; its
    gradient with respect to the outputs is ``2 (a - y) / batch``.
    """
    outputs = _outputs("squared_error", outputs)
    targets = _check_real_array("squared_error", "targets", targets).astype(outputs.dtype)
    _check_same_shape("squared_error", outputs, targets)
    outputs, targets = _drop_masked(where, outputs, targets)
    return _reduce("squared_error", _sum_features((outputs - targets) ** 2), where)


def mean_squared_error(outputs: Array, targets: Array, where: Array | None = None) -> Array:
    """``mean over every element of (a - y)^2`` (``squared_error`` divided by the feature count)."""
    outputs = _outputs("mean_squared_error", outputs)
    targets = _check_real_array("mean_squared_error", "targets", targets).astype(outputs.dtype)
    _check_same_shape("mean_squared_error", outputs, targets)
    outputs, targets = _drop_masked(where, outputs, targets)
    d = (outputs - targets) ** 2
    per_sample = jnp.mean(d.reshape((*d.shape[:1], -1)), axis=-1) if d.ndim > 1 else d
    return _reduce("mean_squared_error", per_sample, where)


def _binary_targets(name: str, outputs, targets):
    targets = _check_real_array(name, "targets", targets)
    if targets.ndim == outputs.ndim - 1 and outputs.shape[-1] == 1:
        targets = targets[..., None]
    _check_same_shape(name, outputs, targets)
    return targets.astype(outputs.dtype)


def binary_cross_entropy(probs: Array, targets: Array, where: Array | None = None) -> Array:
    """``-[y log p + (1 - y) log(1 - p)]`` from probabilities ``p`` (e.g. after ``Sigmoid``).

    ``p`` is clipped to ``[tiny, 1 - tiny]`` inside the logarithms so that a saturated
    sigmoid gives a large finite loss, not ``inf``. Prefer
    :func:`binary_cross_entropy_with_logits`, which is exact for any logit.
    Targets may have shape ``[batch]`` when ``probs`` is ``[batch, 1]``.
    """
    probs = _outputs("binary_cross_entropy", probs)
    y = _binary_targets("binary_cross_entropy", probs, targets)
    probs, y = _drop_masked(where, probs, y)
    tiny = jnp.finfo(probs.dtype).tiny
    log_p = jnp.log(jnp.clip(probs, tiny, 1.0))
    log_1mp = jnp.log(jnp.clip(1.0 - probs, tiny, 1.0))
    return _reduce("binary_cross_entropy", _sum_features(-(y * log_p + (1 - y) * log_1mp)), where)


def binary_cross_entropy_with_logits(logits: Array, targets: Array, where: Array | None = None) -> Array:
    """Binary cross-entropy of ``sigmoid(z)``, computed from the logit ``z``:

    ``l = softplus(z) - z y = max(z, 0) - z y + log(1 + e^{-|z|})``, finite for any
    ``|z|`` (1e4 included). Written with ``softplus`` so that ``jax.grad`` gives the true
    derivative ``sigmoid(z) - y`` everywhere, ``z = 0`` included (``max(z, 0)`` has a kink there).
    Targets may have shape ``[batch]`` when ``logits`` is ``[batch, 1]``.
    """
    logits = _outputs("binary_cross_entropy_with_logits", logits)
    y = _binary_targets("binary_cross_entropy_with_logits", logits, targets)
    logits, y = _drop_masked(where, logits, y)
    per = jax.nn.softplus(logits) - logits * y
    return _reduce("binary_cross_entropy_with_logits", _sum_features(per), where)


def softmax_cross_entropy(logits: Array, targets: Array, where: Array | None = None) -> Array:
    """``-sum_k y_k log softmax(z)_k`` with one-hot (or soft) targets ``y`` of the logits' shape.

    A class with target 0 contributes nothing, even at logit ``-inf`` (a masked class):
    ``softmax_cross_entropy([[0., -inf]], [[1., 0.]])`` is 0 with a finite gradient.
    """
    logits = _outputs("softmax_cross_entropy", logits)
    targets = _check_real_array("softmax_cross_entropy", "targets", targets).astype(logits.dtype)
    _check_same_shape("softmax_cross_entropy", logits, targets)
    logits, targets = _drop_masked(where, logits, targets)
    logp = jax.nn.log_softmax(logits, axis=-1)
    # select, not multiply: 0 * log p is NaN where log p = -inf
    # 0 - sum, not -sum: a perfect prediction is +0.0, not -0.0
    per = 0.0 - jnp.sum(jnp.where(targets != 0, targets * jnp.where(targets != 0, logp, 0), 0), axis=-1)
    return _reduce("softmax_cross_entropy", per, where)


def _check_labels(name: str, logits, labels, where=None):
    """Integer labels of shape ``logits.shape[:-1]``; on concrete input each in ``[0, classes)``.

    Returns ``(labels, valid)``: ``valid`` is a bool array (False for a label out of range,
    which only a traced input can hold).
    """
    labels = _check_real_array(name, "labels", labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"{name}: labels must be integers (class indices), got dtype {labels.dtype}")
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"{name}: labels must have shape {logits.shape[:-1]} for logits of shape {logits.shape}, got {labels.shape}"
        )
    classes = logits.shape[-1]
    valid = (labels >= 0) & (labels < classes)
    if _concrete(labels) and (where is None or _concrete(where)):
        ln = np.asarray(labels)  # numpy: under a jit trace a comparison of constants is a tracer
        bad = (ln < 0) | (ln >= classes)
        if where is not None and np.shape(where) == labels.shape:
            bad &= np.asarray(where) > 0  # a label of a weight-0 (padded) sample is never read
        if bad.any():
            i = tuple(int(j) for j in np.argwhere(bad)[0])
            raise ValueError(
                f"{name}: label {int(ln[i])} at index {i[0] if len(i) == 1 else i} is outside "
                f"[0, {classes}) for logits with {classes} classes"
            )
    return labels, valid


def softmax_cross_entropy_with_integer_labels(logits: Array, labels: Array, where: Array | None = None) -> Array:
    """``-log softmax(z)_{label}`` with integer class labels of shape ``logits.shape[:-1]``.

    Raises:
      ValueError: for a concrete label outside ``[0, classes)`` (under ``jit``: that sample's loss is NaN).
    """
    logits = _outputs("softmax_cross_entropy_with_integer_labels", logits)
    labels, valid = _check_labels("softmax_cross_entropy_with_integer_labels", logits, labels, where)
    (logits,) = _drop_masked(where, logits)
    logp = jax.nn.log_softmax(logits, axis=-1)
    safe = jnp.where(valid, labels, 0).astype(jnp.int32)
    hit = lax.broadcasted_iota(jnp.int32, logp.shape, logp.ndim - 1) == safe[..., None]
    per = -jnp.sum(jnp.where(hit, logp, 0), axis=-1)
    per = jnp.where(valid, per, jnp.nan)
    return _reduce("softmax_cross_entropy_with_integer_labels", per, where)


def accuracy(logits: Array, labels: Array, where: Array | None = None) -> Array:
    """Fraction of samples whose arg-max class equals the label (integer or one-hot labels).

    Raises:
      ValueError: for fewer than 2 classes, or a concrete integer label outside ``[0, classes)``
        (under ``jit`` that sample's hit is NaN, see the module docstring).
    """
    logits = _outputs("accuracy", logits)
    labels = _check_real_array("accuracy", "labels", labels)
    if logits.shape[-1:] == (1,) or logits.ndim < 1:
        raise ValueError(
            "accuracy: logits need at least 2 classes on the last axis; use binary_accuracy for one output"
        )
    if labels.shape == logits.shape and logits.ndim > 1:
        labels, valid = jnp.argmax(labels, axis=-1), jnp.ones(logits.shape[:-1], bool)
    else:
        labels, valid = _check_labels("accuracy", logits, labels, where)
    hit = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
    hit = jnp.where(valid, hit, jnp.nan)
    return _reduce("accuracy", hit, where)


def binary_accuracy(outputs: Array, labels: Array, where: Array | None = None, *, threshold: float = 0.0) -> Array:
    """Fraction of samples with ``(output > threshold) == label``.

    The default threshold 0 suits logits; use ``threshold=0.5`` for probabilities.
    """
    outputs = _outputs("binary_accuracy", outputs)
    y = _binary_targets("binary_accuracy", outputs, labels)
    hit = ((outputs > threshold).astype(outputs.dtype) == y).astype(jnp.float32)
    per = jnp.mean(hit.reshape((*hit.shape[:1], -1)), axis=-1) if hit.ndim > 1 else hit
    return _reduce("binary_accuracy", per, where)


#: Every loss by name: what ``loss="..."`` strings and :func:`get_loss` accept.
LOSSES = {
    "squared_error": squared_error,
    "mean_squared_error": mean_squared_error,
    "binary_cross_entropy": binary_cross_entropy,
    "binary_cross_entropy_with_logits": binary_cross_entropy_with_logits,
    "softmax_cross_entropy": softmax_cross_entropy,
    "softmax_cross_entropy_with_integer_labels": softmax_cross_entropy_with_integer_labels,
}


def get_loss(loss: str | Callable[..., Array]) -> Callable[..., Array]:
    """A loss given by name (see :data:`LOSSES`) or as a callable."""
    if callable(loss):
        return loss
    try:
        return LOSSES[loss]
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {loss!r}; expected one of {sorted(LOSSES)} or a callable") from None
