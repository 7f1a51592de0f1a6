"""Handwritten backprop for convolution and pooling layers, without ``jax.grad``/``jax.vjp``.

Per spatial axis, a ``Conv`` or ``ConvTranspose`` computes (``a`` the input dilation, 1 for
``Conv`` and the strides for ``ConvTranspose``; ``s`` the window stride; ``d`` the kernel
dilation; ``xt`` the input with ``a - 1`` zeros between neighbours, padded by ``(lo, hi)``)::

    y[o, f] = b[f] + sum_{k, c} xt[o s + k d, c] w[k, c, f]

so, with ``g = dL/dy``:

* ``dL/db[f] = sum_{n, o} g[n, o, f]``;
* ``dL/dw[k, c, f] = sum_{n, o} xt[n, o s + k d, c] g[n, o, f]``: a **correlation of the input
  with the output gradient**, a convolution whose "batch" is the input channels, whose
  contracted axis is the batch, with window stride ``d`` and kernel dilation ``s``;
* ``dL/dxt[j, c] = sum_{o s + k d = j} g[o, f] w[k, c, f]``: a **transposed convolution**, the
  output gradient dilated by ``s`` and correlated with the **flipped** kernel (input and output
  channels swapped within each group), read back at every ``a``-th position inside the padding.

Pooling: ``MaxPool`` sends each output's gradient to the first maximal element of its window
(row-major window order), as ``jax.grad`` of ``lax.reduce_window`` does; ``AvgPool`` spreads
``g / count`` over the real elements of each window (a transposed window sum); ``GlobalAvgPool``
spreads ``g / (number of positions)``; ``GlobalMaxPool`` splits ``g`` equally among tied maxima.
"""

from __future__ import annotations

import itertools

import jax.numpy as jnp
from jax import lax

from jaxnet.nn.conv import conv_geometry, dimension_numbers, effective, spatial_axes
from jaxnet.nn.pooling import avg_pool_counts, pool_geometry


def _forward_keep(layer, params, state, x, key, train, mask=None):
    y, new_state = layer.apply(params, state, x, key=key, train=train, mask=mask)
    return y, new_state, (jnp.asarray(x), y)


# --- convolution -------------------------------------------------------------------------------


def conv_input_grad(g, w, x_shape, geo: dict, groups: int, channels_first: bool):
    """``dL/dx`` of ``y = conv_general_dilated(x, w, **geo)``: ``g`` dilated by the strides, correlated
    with the flipped, per-group transposed kernel, sampled every ``lhs_dilation`` positions."""
    rank = w.ndim - 2
    ksize, cin_g, cout = w.shape[:rank], w.shape[rank], w.shape[rank + 1]
    # [*K, Cin/G, G, Cout/G] -> [*K, Cout/G, G, Cin/G]: each group's block maps output to input channels.
    wt = w.reshape(*ksize, cin_g, groups, cout // groups)
    wt = wt.transpose(*range(rank), rank + 2, rank + 1, rank).reshape(*ksize, cout // groups, groups * cin_g)
    wt = lax.rev(wt, tuple(range(rank)))
    spat = spatial_axes(rank, channels_first)
    keff = effective(ksize, geo["rhs_dilation"])
    pads = []
    for ax, k, s, a, (lo, _) in zip(
        spat, keff, geo["window_strides"], geo["lhs_dilation"], geo["padding"], strict=True
    ):
        low = k - 1 - lo
        pads.append((low, (x_shape[ax] - 1) * a + k - ((g.shape[ax] - 1) * s + 1) - low))
    return lax.conv_general_dilated(
        g,
        wt.astype(g.dtype),
        window_strides=geo["lhs_dilation"],
        padding=pads,
        lhs_dilation=geo["window_strides"],
        rhs_dilation=geo["rhs_dilation"],
        dimension_numbers=dimension_numbers(rank, channels_first),
        feature_group_count=groups,
    )


def conv_kernel_grad(x, g, ksize, geo: dict, groups: int, channels_first: bool):
    """``dL/dw`` (HWIO) of ``y = conv_general_dilated(x, w, **geo)``: the correlation of ``x`` with ``g``."""
    rank = len(ksize)
    spat = spatial_axes(rank, channels_first)
    chan = 1 if channels_first else rank + 1
    pads = []
    for ax, k, s, a, d, (lo, _) in zip(
        spat, ksize, geo["window_strides"], geo["lhs_dilation"], geo["rhs_dilation"], geo["padding"], strict=True
    ):
        # Exactly the extent the forward pass read: K output positions at stride d.
        pads.append((lo, (k - 1) * d + (g.shape[ax] - 1) * s + 1 - ((x.shape[ax] - 1) * a + 1) - lo))
    io = (chan, 0, *spat)
    dn = lax.ConvDimensionNumbers(lhs_spec=io, rhs_spec=io, out_spec=(rank, rank + 1, *range(rank)))
    return lax.conv_general_dilated(
        x.astype(g.dtype),
        g,
        window_strides=geo["rhs_dilation"],
        padding=pads,
        lhs_dilation=geo["lhs_dilation"],
        rhs_dilation=geo["window_strides"],
        dimension_numbers=dn,
        batch_group_count=groups,
    )


def _conv_backward(layer, params, saved, g):
    x, _ = saved
    cfg = layer.config
    rank, cf = len(cfg["kernel_size"]), cfg["channels_first"]
    spat = spatial_axes(rank, cf)
    geo = conv_geometry(cfg, [x.shape[a] for a in spat])
    w = params["w"]
    grads = {"w": conv_kernel_grad(x, g, cfg["kernel_size"], geo, cfg["groups"], cf)}
    if "b" in params:
        grads["b"] = jnp.sum(g, axis=(0, *spat))
    return conv_input_grad(g, w, x.shape, geo, cfg["groups"], cf), grads


# --- pooling -----------------------------------------------------------------------------------


def _max_pool_backward(layer, params, saved, g):
    x, y = saved
    dims, strides, pads = pool_geometry(layer.config, x.shape)
    lowest = -jnp.inf if jnp.issubdtype(x.dtype, jnp.inexact) else jnp.iinfo(x.dtype).min
    xp = lax.pad(x, jnp.array(lowest, x.dtype), [(lo, hi, 0) for lo, hi in pads])
    taken = jnp.zeros(y.shape, bool)
    dxp = jnp.zeros(xp.shape, g.dtype)
    span = [(o - 1) * s + 1 for o, s in zip(y.shape, strides, strict=True)]
    # Visit the window's offsets in row-major order; the first maximal element takes the gradient.
    for offset in itertools.product(*(range(k) for k in dims)):
        seen = lax.slice(xp, offset, [o + n for o, n in zip(offset, span, strict=True)], strides)
        chosen = (seen == y) & ~taken
        taken = taken | chosen
        spread = [(o, p - o - n, s - 1) for o, p, n, s in zip(offset, xp.shape, span, strides, strict=True)]
        dxp = dxp + lax.pad(jnp.where(chosen, g, 0), jnp.array(0, g.dtype), spread)
    return lax.slice(dxp, [lo for lo, _ in pads], [lo + n for (lo, _), n in zip(pads, x.shape, strict=True)]), {}


def _avg_pool_backward(layer, params, saved, g):
    x, _ = saved
    dims, strides, pads = pool_geometry(layer.config, x.shape)
    share = g / avg_pool_counts(layer.config, x.shape, g.dtype)
    # dx[i] = sum over windows o holding i of share[o]: dilate by the strides, pad, sum each window.
    spread = []
    for n, o, k, s, (lo, _) in zip(x.shape, g.shape, dims, strides, pads, strict=True):
        low = k - 1 - lo
        spread.append((low, n + k - 1 - low - ((o - 1) * s + 1), s - 1))
    padded = lax.pad(share, jnp.array(0, g.dtype), spread)
    return lax.reduce_window(padded, jnp.array(0, g.dtype), lax.add, dims, (1,) * x.ndim, "VALID"), {}


def _global_axes(layer, x):
    return tuple(range(2, x.ndim)) if layer.config["channels_first"] else tuple(range(1, x.ndim - 1))


def _global_avg_backward(layer, params, saved, g):
    x, _ = saved
    axes = _global_axes(layer, x)
    count = 1
    for a in axes:
        count *= x.shape[a]
    return jnp.broadcast_to(jnp.expand_dims(g / count, axes), x.shape), {}


def _global_max_backward(layer, params, saved, g):
    x, y = saved
    axes = _global_axes(layer, x)
    at_max = (x == jnp.expand_dims(y, axes)).astype(g.dtype)
    return at_max * jnp.expand_dims(g / jnp.sum(at_max, axis=axes), axes), {}


CONV_RULES = {
    "conv": (_forward_keep, _conv_backward),
    "conv_transpose": (_forward_keep, _conv_backward),
    "max_pool": (_forward_keep, _max_pool_backward),
    "avg_pool": (_forward_keep, _avg_pool_backward),
    "global_max_pool": (_forward_keep, _global_max_backward),
    "global_avg_pool": (_forward_keep, _global_avg_backward),
}
"""``kind -> (forward, backward)`` for :data:`jaxnet.autodiff.backprop.RULES`."""
