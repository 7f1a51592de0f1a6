"""Losses and metrics. Every loss maps a batch to the mean per-sample loss.

All losses take ``(outputs, targets, where=None)``. ``where`` is an optional
per-sample weight or mask of shape ``[batch]``: the loss becomes
``sum_i where_i l_i / sum_i where_i`` (so padded samples with ``where = 0`` do not count).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxnet.types import Array


def _reduce(name: str, per_sample, where):
    if where is None:
        return jnp.mean(per_sample)
    where = jnp.asarray(where)
    if where.shape != per_sample.shape:
        raise ValueError(f"{name}: where must have shape {per_sample.shape} (one weight per sample), got {where.shape}")
    w = where.astype(per_sample.dtype)
    return jnp.sum(w * per_sample) / jnp.maximum(jnp.sum(w), 1)


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
    targets = jnp.asarray(targets, outputs.dtype)
    _check_same_shape("squared_error", outputs, targets)
    return _reduce("squared_error", _sum_features((outputs - targets) ** 2), where)


def mean_squared_error(outputs: Array, targets: Array, where: Array | None = None) -> Array:
    """``mean over every element of (a - y)^2`` (``squared_error`` divided by the feature count)."""
    targets = jnp.asarray(targets, outputs.dtype)
    _check_same_shape("mean_squared_error", outputs, targets)
    d = (outputs - targets) ** 2
    per_sample = jnp.mean(d.reshape((*d.shape[:1], -1)), axis=-1) if d.ndim > 1 else d
    return _reduce("mean_squared_error", per_sample, where)


def _binary_targets(name: str, outputs, targets):
    targets = jnp.asarray(targets)
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
    y = _binary_targets("binary_cross_entropy", probs, targets)
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
    y = _binary_targets("binary_cross_entropy_with_logits", logits, targets)
    per = jax.nn.softplus(logits) - logits * y
    return _reduce("binary_cross_entropy_with_logits", _sum_features(per), where)


def softmax_cross_entropy(logits: Array, targets: Array, where: Array | None = None) -> Array:
    """``-sum_k y_k log softmax(z)_k`` with one-hot (or soft) targets ``y`` of the logits' shape."""
    targets = jnp.asarray(targets, logits.dtype)
    _check_same_shape("softmax_cross_entropy", logits, targets)
    per = -jnp.sum(targets * jax.nn.log_softmax(logits, axis=-1), axis=-1)
    return _reduce("softmax_cross_entropy", per, where)


def _check_labels(name: str, logits, labels):
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"{name}: labels must be integers (class indices), got dtype {labels.dtype}")
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"{name}: labels must have shape {logits.shape[:-1]} for logits of shape {logits.shape}, got {labels.shape}"
        )
    return labels


def softmax_cross_entropy_with_integer_labels(logits: Array, labels: Array, where: Array | None = None) -> Array:
    """``-log softmax(z)_{label}`` with integer class labels of shape ``logits.shape[:-1]``.

    Labels outside ``[0, n_classes)`` cannot be checked inside a compiled function;
    the training engine checks them on the host before training.
    """
    labels = _check_labels("softmax_cross_entropy_with_integer_labels", logits, labels)
    logp = jax.nn.log_softmax(logits, axis=-1)
    per = -jnp.take_along_axis(logp, labels[..., None].astype(jnp.int32), axis=-1)[..., 0]
    return _reduce("softmax_cross_entropy_with_integer_labels", per, where)


def accuracy(logits: Array, labels: Array, where: Array | None = None) -> Array:
    """Fraction of samples whose arg-max class equals the label (integer or one-hot labels)."""
    labels = jnp.asarray(labels)
    if labels.shape == logits.shape and logits.ndim > 1:
        labels = jnp.argmax(labels, axis=-1)
    else:
        labels = _check_labels("accuracy", logits, labels)
    if logits.shape[-1] < 2:
        raise ValueError(
            "accuracy: logits need at least 2 classes on the last axis; use binary_accuracy for one output"
        )
    hit = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
    return _reduce("accuracy", hit, where)


def binary_accuracy(outputs: Array, labels: Array, where: Array | None = None, *, threshold: float = 0.0) -> Array:
    """Fraction of samples with ``(output > threshold) == label``.

    The default threshold 0 suits logits; use ``threshold=0.5`` for probabilities.
    """
    y = _binary_targets("binary_accuracy", outputs, labels)
    hit = ((outputs > threshold).astype(outputs.dtype) == y).astype(jnp.float32)
    per = jnp.mean(hit.reshape((*hit.shape[:1], -1)), axis=-1) if hit.ndim > 1 else hit
    return _reduce("binary_accuracy", per, where)


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
