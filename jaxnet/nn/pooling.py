"""Pooling layers over 1, 2 or 3 spatial dimensions: :func:`MaxPool`, :func:`AvgPool`,
:func:`GlobalMaxPool` and :func:`GlobalAvgPool`.

Layouts, strides and padding specs are those of :mod:`jaxnet.nn.conv` (channels last by default,
``"SAME"``, ``"VALID"``, an int or ``(low, high)`` pairs per axis). A window slides over each
channel separately; the output has ``floor((in + low + high - k) / s) + 1`` positions per axis.

Padding never adds values: ``MaxPool`` pads with ``-inf`` (the identity of max), and ``AvgPool``
divides each window's sum by the number of **real** input elements it covers, not by the window
size (PyTorch's ``count_include_pad=False``; Flax's ``count_include_pad=False``). So that every
window covers at least one real element, an explicit padding must be smaller than the window
on each side.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxnet.nn.conv import check_padding, check_per_axis, check_window, explicit_pads, spatial_axes, window_out
from jaxnet.nn.core import fmt_shape, make_layer
from jaxnet.types import Layer


def pool_geometry(cfg: dict, shape) -> tuple[tuple, tuple, tuple]:
    """``(window_dimensions, window_strides, padding)`` over every axis of an input of ``shape``."""
    rank = len(cfg["window"])
    spat = spatial_axes(rank, cfg["channels_first"])
    sizes = [shape[a] for a in spat]
    pads = explicit_pads(cfg["padding"], sizes, cfg["window"], cfg["strides"])
    dims, strides = [1] * len(shape), [1] * len(shape)
    padding: list[tuple[int, ...]] = [(0, 0)] * len(shape)
    for a, k, s, p in zip(spat, cfg["window"], cfg["strides"], pads, strict=True):
        dims[a], strides[a], padding[a] = k, s, tuple(p)
    return tuple(dims), tuple(strides), tuple(padding)


def avg_pool_counts(cfg: dict, shape, dtype) -> np.ndarray:
    """How many real input elements each output window of an ``AvgPool`` covers, broadcastable to its output."""
    dims, strides, pads = pool_geometry(cfg, shape)
    counts = np.ones((1,) * len(shape))
    for a, (n, k, s, (lo, hi)) in enumerate(zip(shape, dims, strides, pads, strict=True)):
        if k == 1 and s == 1 and lo == hi == 0:
            continue
        start = np.arange(window_out(n, (lo, hi), k, s)) * s - lo
        c = np.minimum(start + k, n) - np.maximum(start, 0)
        counts = counts * c.reshape([-1 if i == a else 1 for i in range(len(shape))])
    return counts.astype(dtype)


def _lowest(dtype):
    return -jnp.inf if jnp.issubdtype(dtype, jnp.inexact) else jnp.iinfo(dtype).min


def _pool_layer(kind: str, window, strides, padding, channels_first: bool, name) -> Layer:
    title = {"max_pool": "MaxPool", "avg_pool": "AvgPool"}[kind]
    window = check_window(title, "window", window)
    rank = len(window)
    display = f"{title}({window})"
    strides = window if strides is None else check_per_axis(display, "strides", strides, rank)
    padding = check_padding(display, padding, rank)
    if not isinstance(padding, str):
        for k, (lo, hi) in zip(window, padding, strict=True):
            if lo >= k or hi >= k:
                raise ValueError(
                    f"{display}: padding {padding} must be smaller than the window {window} on each side "
                    "(a window over padding alone has no real element)"
                )
    if not isinstance(channels_first, bool):
        raise TypeError(f"{display}: channels_first must be a bool, got {channels_first!r}")
    cfg = dict(window=window, strides=strides, padding=padding, channels_first=channels_first)
    layout = (
        ("[N, C, " if channels_first else "[N, ") + ", ".join("DHW"[3 - rank :]) + ("]" if channels_first else ", C]")
    )

    def out_shape(shape, where):
        if len(shape) != rank + 2:
            raise ValueError(
                f"{display}{where} expected a {rank}-D input {layout} ({rank + 2} axes), got {fmt_shape(shape)}; "
                f"window {window} has {rank} spatial axes"
            )
        dims, strd, pads = pool_geometry(cfg, shape)
        out = list(shape)
        for a in spatial_axes(rank, channels_first):
            if shape[a] == -1:
                raise ValueError(f"{display}{where}: spatial sizes must be known, got {fmt_shape(shape)}")
            out[a] = window_out(shape[a], pads[a], dims[a], strd[a])
            if out[a] < 1:
                raise ValueError(
                    f"{display}{where}: the window {window} is larger than the padded input {fmt_shape(shape)}; "
                    "use a smaller window or padding='SAME'"
                )
        return tuple(out)

    def init(key, input_shape):
        return out_shape(input_shape, ".init"), {}, {}

    def apply(params, state, x, *, key, train):
        x = jnp.asarray(x)
        out_shape(x.shape, "")
        dims, strd, pads = pool_geometry(cfg, x.shape)
        if kind == "max_pool":
            return lax.reduce_window(x, np.array(_lowest(x.dtype), x.dtype), lax.max, dims, strd, pads), state
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            x = x.astype(jnp.float32)
        total = lax.reduce_window(x, np.array(0, x.dtype), lax.add, dims, strd, pads)
        return total / avg_pool_counts(cfg, x.shape, x.dtype), state

    return make_layer(display, init, apply, kind=kind, config=cfg, scope=name)


def MaxPool(window, strides=None, padding="VALID", *, channels_first: bool = False, name: str | None = None) -> Layer:
    """Max pooling: ``y[n, o, c] = max_k xpad[n, o * s + k, c]`` per spatial axis, padding with ``-inf``.

    Args:
      window: a tuple of 1, 2 or 3 positive ints; its length is the number of spatial axes.
      strides: an int or one per axis; default the window (non-overlapping windows).
      padding: ``"VALID"`` (default), ``"SAME"``, an int or per axis an int or ``(low, high)``,
        each smaller than the window.
      channels_first: inputs ``[N, C, *spatial]`` instead of ``[N, *spatial, C]``.
      name: the layer's key in a ``serial`` model.

    Returns:
      A :class:`~jaxnet.types.Layer` without params. Its gradient goes to the first maximal
      element of each window (row-major window order) when several are equal.

    Raises:
      TypeError/ValueError: for a bad window, strides or padding spec; at init/apply for an
        input whose rank does not match the window or that is smaller than the window.
    """
    return _pool_layer("max_pool", window, strides, padding, channels_first, name)


def AvgPool(window, strides=None, padding="VALID", *, channels_first: bool = False, name: str | None = None) -> Layer:
    """Average pooling over the real elements of each window: ``y = sum_k xpad[o * s + k] / count(o)``.

    ``count(o)`` is the number of input (not padding) elements window ``o`` covers, so a
    border window of a ``"SAME"``-padded input averages only what is there.

    Args and Raises: as :func:`MaxPool`.
    """
    return _pool_layer("avg_pool", window, strides, padding, channels_first, name)


def _global_pool(kind: str, channels_first: bool, name) -> Layer:
    title = {"global_max_pool": "GlobalMaxPool", "global_avg_pool": "GlobalAvgPool"}[kind]
    if not isinstance(channels_first, bool):
        raise TypeError(f"{title}: channels_first must be a bool, got {channels_first!r}")
    display = f"{title}()"

    def axes(ndim, where, shape):
        if ndim < 3:
            raise ValueError(
                f"{display}{where} expected an input with a batch, 1 to 3 spatial axes and channels, "
                f"got {fmt_shape(shape)}"
            )
        return tuple(range(2, ndim)) if channels_first else tuple(range(1, ndim - 1))

    def init(key, input_shape):
        axes(len(input_shape), ".init", input_shape)
        return (input_shape[0], input_shape[1 if channels_first else -1]), {}, {}

    def apply(params, state, x, *, key, train):
        x = jnp.asarray(x)
        ax = axes(x.ndim, "", x.shape)
        if kind == "global_max_pool":
            return jnp.max(x, axis=ax), state
        return jnp.mean(x, axis=ax), state

    return make_layer(display, init, apply, kind=kind, config={"channels_first": channels_first}, scope=name)


def GlobalMaxPool(*, channels_first: bool = False, name: str | None = None) -> Layer:
    """The maximum of each channel over all spatial positions: ``[N, *spatial, C] -> [N, C]``.

    Where several positions hold the maximum, the gradient is split equally among them
    (as ``jax.grad`` of ``jnp.max`` does).
    """
    return _global_pool("global_max_pool", channels_first, name)


def GlobalAvgPool(*, channels_first: bool = False, name: str | None = None) -> Layer:
    """The mean of each channel over all spatial positions: ``[N, *spatial, C] -> [N, C]``."""
    return _global_pool("global_avg_pool", channels_first, name)
