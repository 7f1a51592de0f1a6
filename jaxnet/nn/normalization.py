"""Batch normalization (§4.3.3): normalise with batch statistics in training, running
statistics in evaluation.

Training, per channel ``c`` over the ``m`` values of that channel in the batch (every
axis but the channel axis: the batch axis for ``[batch, features]``, batch and both
spatial axes for ``[N, H, W, C]``)::

    mu    = (1/m) sum_i x_i
    s2    = (1/m) sum_i (x_i - mu)^2                 (biased: used to normalise)
    y_i   = gamma (x_i - mu) / sqrt(s2 + eps) + beta
    mean <- (1 - momentum) mean + momentum mu
    var  <- (1 - momentum) var  + momentum s2 m/(m - 1)   (unbiased: an estimate of the variance)

Evaluation: ``y = gamma (x - mean) / sqrt(var + eps) + beta``, with the state unchanged,
so a sample's output does not depend on the rest of its batch.

With a mask (``apply(..., mask=w)``, ``w`` of shape ``[batch]`` or ``[batch, time]``: which
samples or tokens are real, or their weights ``>= 0``) every statistic is taken over the real
values only, each value ``x_i`` weighted by its ``w_i``::

    S     = sum_i w_i,   mu = (1/S) sum_i w_i x_i,   s2 = (1/S) sum_i w_i (x_i - mu)^2
    var  <- (1 - momentum) var + momentum s2 S^2 / (S^2 - sum_i w_i^2)

The correction ``S^2 / (S^2 - sum w^2)`` is ``n_eff / (n_eff - 1)`` with Kish's effective
count ``n_eff = S^2 / sum w^2``: for a 0/1 mask it is ``m/(m - 1)`` over the ``m`` real values
(exactly the unmasked rule on the batch without the padded rows), and like the weighted loss
it does not change when every weight is scaled. Padded rows are normalised with the real
rows' statistics (their outputs are finite and ignored by a masked loss). A batch with no
real value leaves the running statistics unchanged; one with a single real value (``n_eff
<= 1``) updates the running mean but not the running variance, which it cannot estimate.

The momentum convention is PyTorch's: ``momentum`` is the weight of the *new* batch.
Flax's ``BatchNorm(momentum=...)`` is the weight of the *old* running value, so
``flax_momentum = 1 - torch_momentum`` (Flax's default 0.99 is PyTorch's 0.01). The
chapter's "average of the recent mini-batches" is this exponential moving average: the
batch seen ``k`` steps ago weighs ``momentum (1 - momentum)^k``, so roughly the last
``1/momentum`` batches count; an average of the last ``N`` batches has the same mean
age as ``momentum = 2 / (N + 1)``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from jaxnet.nn.core import ParamsMismatchError, check_real, fmt_shape, make_layer
from jaxnet.types import Layer


def _channel_axis(name: str, axis: int, ndim: int, where: str) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}{where}: axis={axis} is out of range for an input with {ndim} axes")
    axis %= ndim
    if axis == 0:
        raise ValueError(
            f"{name}{where}: axis={axis} is the batch axis; the channel axis must be another one "
            "(statistics are taken over the batch)"
        )
    return axis


def _check_vector(name: str, what: str, tree: dict, keys: tuple, channels: int) -> None:
    """Params/state must be exactly ``keys``, each a vector of ``channels`` values."""
    if not isinstance(tree, dict) or set(tree) != set(keys):
        got = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
        raise ParamsMismatchError(f"{name}: {what} must have keys {list(keys)}, got {got}")
    for k in keys:
        shape = tuple(jnp.shape(tree[k]))
        if shape != (channels,):
            raise ParamsMismatchError(
                f"{name}: {what}[{k!r}] must have shape ({channels},) for an input with {channels} channels, "
                f"got {shape}"
            )


def BatchNorm(
    momentum: float = 0.1,
    eps: float = 1e-5,
    affine: bool = True,
    axis: int = -1,
    *,
    dtype: DTypeLike = jnp.float32,
    name: str | None = None,
) -> Layer:
    """Batch normalization: ``y = gamma (x - mu) / sqrt(s2 + eps) + beta`` per channel.

    See the module docstring for the formulas and the momentum convention.

    Args:
      momentum: weight of the current batch in the running statistics, in ``[0, 1]``
        (PyTorch's convention; Flax's momentum is ``1 -`` this).
      eps: added to the variance before the square root, ``> 0``.
      affine: learn a scale ``gamma`` (initialised to 1) and a shift ``beta`` (0) per channel.
      axis: the channel axis (default last: ``[batch, features]`` and ``[N, H, W, C]``;
        ``axis=1`` for ``[N, C, H, W]``). It cannot be the batch axis.
      dtype: dtype of the params and the running statistics.
      name: the key ``serial`` files the params and state under (default ``batchnorm_<position>``).

    Params: ``{"gamma": [C], "beta": [C]}`` (``{}`` when ``affine=False``).
    State: ``{"mean": [C], "var": [C]}``, starting at 0 and 1; ``init`` never looks at data.

    Raises:
      ValueError/TypeError: for ``momentum`` outside ``[0, 1]``, ``eps <= 0``, a non-bool
        ``affine`` or non-int ``axis``; at init, for an unknown channel size; in training,
        for a batch with a single value per channel (its variance is undefined), or a mask
        that covers the channel axis.
    """
    momentum = check_real("BatchNorm", "momentum", momentum, low=0.0, high=1.0)
    eps = check_real("BatchNorm", "eps", eps, low=0.0, low_open=True)
    if not isinstance(affine, bool):
        raise TypeError(f"BatchNorm: affine must be a bool, got {affine!r}")
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError(f"BatchNorm: axis must be an int (the channel axis), got {axis!r}")
    shown = [f"momentum={momentum:g}"] * (momentum != 0.1) + [f"eps={eps:g}"] * (eps != 1e-5)
    shown += ["affine=False"] * (not affine) + [f"axis={axis}"] * (axis != -1)
    scope, name = name, "BatchNorm(" + ", ".join(shown) + ")"

    def init(key, input_shape):
        ax = _channel_axis(name, axis, len(input_shape), ".init")
        channels = input_shape[ax]
        if channels == -1:
            raise ValueError(f"{name}.init: the channel axis {axis} of input_shape must be known, got {input_shape}")
        params = {"gamma": jnp.ones((channels,), dtype), "beta": jnp.zeros((channels,), dtype)} if affine else {}
        state = {"mean": jnp.zeros((channels,), dtype), "var": jnp.ones((channels,), dtype)}
        return input_shape, params, state

    def apply(params, state, x, *, key, train, mask=None):
        x = jnp.asarray(x)
        ax = _channel_axis(name, axis, x.ndim, "")
        channels = x.shape[ax]
        _check_vector(name, "params", params, ("gamma", "beta") if affine else (), channels)
        _check_vector(name, "state", state, ("mean", "var"), channels)
        reduce = tuple(i for i in range(x.ndim) if i != ax)
        bshape = tuple(channels if i == ax else 1 for i in range(x.ndim))
        # Statistics in at least float32, so half-precision inputs do not lose the variance.
        ctype = jnp.promote_types(x.dtype, jnp.float32)
        xc = x.astype(ctype)

        if train and mask is not None:
            mu, s2, new_state = _masked_statistics(name, state, xc, mask, ax, reduce, bshape, momentum)
        elif train:
            m = math.prod(x.shape[i] for i in reduce)
            if m < 2:
                raise ValueError(
                    f"{name}: training needs at least 2 values per channel to estimate a variance, got an input "
                    f"of shape {fmt_shape(x.shape)} (a batch of one sample); use a larger batch or train=False"
                )
            mu = jnp.mean(xc, axis=reduce)
            s2 = jnp.mean(jnp.square(xc - mu.reshape(bshape)), axis=reduce)
            # The running statistics are bookkeeping, not part of the loss: no gradient reaches them.
            mu_sg, s2_sg = jax.lax.stop_gradient(mu), jax.lax.stop_gradient(s2)
            new_state = {
                "mean": ((1 - momentum) * state["mean"] + momentum * mu_sg).astype(state["mean"].dtype),
                "var": ((1 - momentum) * state["var"] + momentum * s2_sg * (m / (m - 1))).astype(state["var"].dtype),
            }
        else:
            mu, s2 = state["mean"].astype(ctype), state["var"].astype(ctype)
            new_state = state

        y = (xc - mu.reshape(bshape)) * jax.lax.rsqrt(s2.reshape(bshape) + eps)
        if affine:
            y = y * params["gamma"].astype(ctype).reshape(bshape) + params["beta"].astype(ctype).reshape(bshape)
        out_dtype = jnp.result_type(x.dtype, params["gamma"].dtype) if affine else x.dtype
        if not jnp.issubdtype(out_dtype, jnp.floating):
            out_dtype = ctype
        return y.astype(out_dtype), new_state

    return make_layer(
        name,
        init,
        apply,
        kind="batchnorm",
        config={"momentum": momentum, "eps": eps, "affine": affine, "axis": axis},
        scope=scope,
        uses_mask=True,
    )


def _masked_statistics(name, state, xc, mask, ax, reduce, bshape, momentum):
    """Weighted batch statistics over the real values and the running statistics they give (module docstring)."""
    if mask.ndim > ax:
        raise ValueError(
            f"{name}: a mask of shape {tuple(mask.shape)} covers the channel axis {ax} of an input of shape "
            f"{tuple(xc.shape)}; give a [batch] mask"
        )
    w = jnp.asarray(mask).astype(xc.dtype)
    w = jnp.broadcast_to(w.reshape(w.shape + (1,) * (xc.ndim - w.ndim)), xc.shape)
    total = jnp.sum(w, axis=reduce)  # S per channel
    some = total > 0
    safe = jnp.where(some, total, 1)
    # select, not multiply: a padded row holding inf or NaN must not reach the statistics
    real = w > 0
    mu = jnp.sum(w * jnp.where(real, xc, 0), axis=reduce) / safe
    dev = jnp.where(real, xc - mu.reshape(bshape), 0)
    s2 = jnp.sum(w * jnp.square(dev), axis=reduce) / safe
    sq = jnp.sum(jnp.square(w), axis=reduce)
    denom = jnp.square(total) - sq  # S^2 - sum w^2 > 0 iff more than one real value
    has_var = denom > 0
    unbiased = s2 * jnp.square(total) / jnp.where(has_var, denom, 1)
    mu_sg, var_sg = jax.lax.stop_gradient(mu), jax.lax.stop_gradient(unbiased)
    new_mean = jnp.where(some, (1 - momentum) * state["mean"] + momentum * mu_sg, state["mean"])
    new_var = jnp.where(has_var, (1 - momentum) * state["var"] + momentum * var_sg, state["var"])
    new_state = {"mean": new_mean.astype(state["mean"].dtype), "var": new_var.astype(state["var"].dtype)}
    return mu, s2, new_state
