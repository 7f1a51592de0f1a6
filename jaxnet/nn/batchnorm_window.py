"""Batch normalization whose test statistics are the plain average of the last ``N`` batches (section 4.3.3).

The chapter says to normalise at test time with "averages over recent mini-batches".
:func:`~jaxnet.nn.normalization.BatchNorm` does this the usual way, with an exponential
moving average; :func:`WindowBatchNorm` does it literally: it keeps the last ``window``
batches' means and unbiased variances in a ring buffer and, in evaluation, uses their plain
averages (Ioffe and Szegedy's population statistics over the most recent batches)::

    mean = (1/n) sum_{j in last n batches} mu_j
    var  = (1/n) sum_{j in last n batches} s2_j m/(m - 1),      n = min(batches seen, window)

Training normalises with the batch's own statistics exactly as ``BatchNorm`` does. Before
any training batch the evaluation statistics are mean 0 and variance 1.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxnet.nn.core import check_real, fmt_shape, make_layer
from jaxnet.nn.normalization import BatchNorm, _channel_axis
from jaxnet.types import Layer


def window_statistics(state: dict):
    """The evaluation ``(mean, var)`` of a :func:`WindowBatchNorm` state: plain averages of the stored batches.

    Args:
      state: ``{"means": [N, C], "vars": [N, C], "count": int32 []}``.

    Returns:
      ``(mean [C], var [C])``; ``(0, 1)`` while no batch has been seen.
    """
    window = state["means"].shape[0]
    filled = jnp.arange(window) < state["count"]  # the ring holds min(count, window) batches
    n = jnp.maximum(jnp.sum(filled), 1).astype(state["means"].dtype)
    mean = jnp.sum(jnp.where(filled[:, None], state["means"], 0), axis=0) / n
    var = jnp.sum(jnp.where(filled[:, None], state["vars"], 0), axis=0) / n
    seen = state["count"] > 0
    mean, var = jnp.where(seen, mean, 0.0), jnp.where(seen, var, 1.0)
    return mean.astype(state["means"].dtype), var.astype(state["vars"].dtype)


def WindowBatchNorm(
    window: int = 10, eps: float = 1e-5, affine: bool = True, axis: int = -1, *, dtype=jnp.float32, name=None
) -> Layer:
    """Batch normalization with test statistics averaged over the last ``window`` training batches.

    Args:
      window: how many recent batches the evaluation statistics average (>= 1).
      eps: added to the variance before the square root, ``> 0``.
      affine: learn a scale ``gamma`` (1) and a shift ``beta`` (0) per channel.
      axis: the channel axis (default last); not the batch axis.
      dtype: dtype of the params and the stored statistics.
      name: the key ``serial`` files this layer's params and state under.

    Params: ``{"gamma": [C], "beta": [C]}`` (``{}`` when ``affine=False``).
    State: ``{"means": [window, C], "vars": [window, C], "count": int32 []}`` (batches seen).

    A ``mask`` (given to ``apply`` for padded batches) leaves the masked samples out of the
    batch statistics.

    Raises:
      ValueError/TypeError: for a ``window`` that is not an int >= 1, ``eps <= 0``, a non-bool
        ``affine`` or non-int ``axis``; in training, for fewer than 2 values per channel.
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"WindowBatchNorm: window must be an int >= 1 (batches to average), got {window!r}")
    eps = check_real("WindowBatchNorm", "eps", eps, low=0.0, low_open=True)
    if not isinstance(affine, bool):
        raise TypeError(f"WindowBatchNorm: affine must be a bool, got {affine!r}")
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError(f"WindowBatchNorm: axis must be an int (the channel axis), got {axis!r}")
    label = f"WindowBatchNorm({window})"

    def init(key, input_shape):
        ax = _channel_axis(label, axis, len(input_shape), ".init")
        c = input_shape[ax]
        if c == -1:
            raise ValueError(f"{label}.init: the channel axis {axis} of input_shape must be known, got {input_shape}")
        params = {"gamma": jnp.ones((c,), dtype), "beta": jnp.zeros((c,), dtype)} if affine else {}
        state = {
            "means": jnp.zeros((window, c), dtype),
            "vars": jnp.ones((window, c), dtype),
            "count": jnp.zeros((), jnp.int32),
        }
        return input_shape, params, state

    # The normalisation itself is BatchNorm's evaluation path fed with the statistics to use:
    # the batch's own in training (gradients flow through them), the window's averages in evaluation.
    normalize = BatchNorm(eps=eps, affine=affine, axis=axis, dtype=dtype)

    def apply(params, state, x, *, key, train, mask=None):
        x = jnp.asarray(x)
        ax = _channel_axis(label, axis, x.ndim, "")
        c = x.shape[ax]
        if state["means"].shape != (window, c):
            raise ValueError(f"{label}: state means must have shape ({window}, {c}), got {state['means'].shape}")
        if not train:
            mean, var = window_statistics(state)
            return normalize.apply(params, {"mean": mean, "var": var}, x, train=False)[0], state
        reduce = tuple(i for i in range(x.ndim) if i != ax)
        m = math.prod(x.shape[i] for i in reduce)
        if m < 2:
            raise ValueError(
                f"{label}: training needs at least 2 values per channel, got an input of shape {fmt_shape(x.shape)}"
            )
        ctype = jnp.promote_types(x.dtype, jnp.float32)
        xc = x.astype(ctype)
        if mask is None:
            w = jnp.ones(x.shape, ctype)
        else:  # masked samples (padding) take no part in the statistics
            w = jnp.broadcast_to(jnp.reshape(mask, mask.shape + (1,) * (x.ndim - mask.ndim)), x.shape).astype(ctype)
        count = jnp.maximum(jnp.sum(w, axis=reduce), 1.0)
        mu = jnp.sum(w * xc, axis=reduce) / count
        bshape = tuple(c if i == ax else 1 for i in range(x.ndim))
        s2 = jnp.sum(w * jnp.square(xc - mu.reshape(bshape)), axis=reduce) / count
        y, _ = normalize.apply(params, {"mean": mu, "var": s2}, x, train=False)
        unbiased = jax.lax.stop_gradient(s2 * count / jnp.maximum(count - 1.0, 1.0))
        slot = state["count"] % window
        new_state = {
            "means": state["means"].at[slot].set(jax.lax.stop_gradient(mu).astype(state["means"].dtype)),
            "vars": state["vars"].at[slot].set(unbiased.astype(state["vars"].dtype)),
            "count": state["count"] + 1,
        }
        return y, new_state

    return make_layer(
        label,
        init,
        apply,
        kind="window_batchnorm",
        config={"window": window, "eps": eps, "affine": affine, "axis": axis},
        scope=name,
        uses_mask=True,
    )
