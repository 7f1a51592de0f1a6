"""Per-sample normalization: ``LayerNorm`` (Ba et al. 2016) and ``RMSNorm`` (Zhang & Sennrich 2019).

Unlike :func:`~jaxnet.nn.BatchNorm`, the statistics are taken over the feature axes of each
sample (``axis``, default the last), so a sample's output never depends on the rest of its
batch, training and evaluation compute the same thing, and there is no state::

    LayerNorm:  mu = mean(x), s2 = mean((x - mu)^2)      (biased, over ``axis``)
                y  = gamma (x - mu) / sqrt(s2 + eps) + beta
    RMSNorm:    r2 = mean(x^2)                           (no centring, no shift)
                y  = gamma x / sqrt(r2 + eps)

The eps conventions are PyTorch's: ``eps`` is added to the variance (or mean square)
*inside* the square root. ``LayerNorm``'s default ``eps=1e-5`` is PyTorch's and Flax's
(Flax spells it ``epsilon``, Keras uses 1e-3). For ``RMSNorm`` PyTorch's default
``eps=None`` means ``torch.finfo(dtype).eps``; jaxnet uses a fixed ``1e-6`` (Flax's default),
so float32 results match PyTorch's ``RMSNorm(eps=1e-6)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnet.nn.core import check_real, make_layer
from jaxnet.types import Layer


def _check_axis_arg(layer: str, axis) -> tuple[int, ...]:
    axes = axis if isinstance(axis, tuple) else (axis,)
    if not axes or any(isinstance(a, bool) or not isinstance(a, int) for a in axes):
        raise TypeError(f"{layer}: axis must be an int or a non-empty tuple of ints (the feature axes), got {axis!r}")
    return axes


def _resolve_axes(layer: str, axes: tuple[int, ...], ndim: int, where: str) -> tuple[int, ...]:
    """The normalized axes as non-negative ints, checked against an input of ``ndim`` axes."""
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"{layer}{where}: axis={a} is out of range for an input with {ndim} axes")
        a %= ndim
        if a == 0:
            raise ValueError(
                f"{layer}{where}: axis={a} is the batch axis; normalize over the feature axes "
                "(a statistic over the batch is BatchNorm)"
            )
        out.append(a)
    if len(set(out)) != len(out):
        raise ValueError(f"{layer}{where}: axis={axes} names the same axis twice for an input with {ndim} axes")
    return tuple(sorted(out))


def _norm_layer(kind: str, display: str, axis, eps: float, affine: bool, name, dtype) -> Layer:
    axes_arg = _check_axis_arg(display, axis)
    centre = kind == "layernorm"

    def init(key, input_shape):
        axes = _resolve_axes(display, axes_arg, len(input_shape), ".init")
        feat = tuple(input_shape[a] for a in axes)
        if any(s == -1 for s in feat):
            raise ValueError(
                f"{display}.init: the normalized axes {axes} of input_shape must be known, got {input_shape}"
            )
        params = {}
        if affine:
            params["gamma"] = jnp.ones(feat, dtype)
            if centre:
                params["beta"] = jnp.zeros(feat, dtype)
        return input_shape, params, {}

    def apply(params, state, x, *, key, train, mask):
        x = jnp.asarray(x)
        axes = _resolve_axes(display, axes_arg, x.ndim, "")
        if mask is not None and jnp.ndim(mask) > min(axes):
            raise ValueError(
                f"{display}: a [batch, time] mask cannot be applied when axis 1 (time) is normalized over; "
                f"normalize over the feature axes only (got axis={axis} for an input of shape {tuple(x.shape)})"
            )
        feat = tuple(x.shape[a] for a in axes)
        want = ("gamma", "beta") if (affine and centre) else ("gamma",) if affine else ()
        if not isinstance(params, dict) or set(params) != set(want):
            got = sorted(params) if isinstance(params, dict) else type(params).__name__
            raise ValueError(f"{display}: params must have keys {list(want)}, got {got}")
        for k in want:
            if tuple(jnp.shape(params[k])) != feat:
                raise ValueError(
                    f"{display}: params[{k!r}] must have shape {feat} for an input of shape {tuple(x.shape)}, "
                    f"got {tuple(jnp.shape(params[k]))}"
                )
        bshape = tuple(x.shape[i] if i in axes else 1 for i in range(x.ndim))
        # Statistics in at least float32, so half-precision inputs do not lose the variance.
        ctype = jnp.promote_types(x.dtype, jnp.float32)
        xc = x.astype(ctype)
        if centre:
            xc = xc - jnp.mean(xc, axis=axes, keepdims=True)
        y = xc * jax.lax.rsqrt(jnp.mean(jnp.square(xc), axis=axes, keepdims=True) + eps)
        out_dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else ctype
        if affine:
            y = y * params["gamma"].astype(ctype).reshape(bshape)
            if centre:
                y = y + params["beta"].astype(ctype).reshape(bshape)
            out_dtype = jnp.result_type(out_dtype, params["gamma"].dtype)
        return y.astype(out_dtype), state

    config = {"axis": axes_arg, "eps": eps, "affine": affine}
    return make_layer(display, init, apply, kind=kind, config=config, scope=name, uses_mask=True)


def _display(kind: str, axis, eps: float, default_eps: float, affine: bool) -> str:
    shown = [f"axis={axis}"] * (axis != -1) + [f"eps={eps:g}"] * (eps != default_eps) + ["affine=False"] * (not affine)
    return f"{kind}(" + ", ".join(shown) + ")"


def LayerNorm(
    axis: int | tuple[int, ...] = -1,
    eps: float = 1e-5,
    affine: bool = True,
    *,
    name: str | None = None,
    dtype=jnp.float32,
) -> Layer:
    """Layer normalization: ``y = gamma (x - mean(x)) / sqrt(var(x) + eps) + beta`` over ``axis`` of each sample.

    See the module docstring for the formulas and the eps convention (PyTorch's).

    Args:
      axis: the feature axis or axes normalized over (default the last); never the batch axis 0.
        ``axis=(1, 2, 3)`` on ``[N, H, W, C]`` normalizes each sample over all its values.
      eps: added to the variance inside the square root, ``> 0`` (default 1e-5, as PyTorch and Flax).
      affine: learn ``gamma`` (initialised to 1) and ``beta`` (0), one per normalized element.
      name: the key ``serial`` files the params under (default ``layernorm_<position>``).
      dtype: dtype of ``gamma`` and ``beta``.

    Params: ``{"gamma": F, "beta": F}`` with ``F`` the sizes of the normalized axes (``{}`` when
    ``affine=False``). No state. ``apply`` takes ``mask`` only to refuse a ``[batch, time]``
    mask when the time axis is normalized over (padding would enter the statistics).

    Raises:
      TypeError/ValueError: for a non-int ``axis``, ``eps <= 0`` or a non-bool ``affine``; at init
        or apply, for an axis out of range, the batch axis, or an unknown normalized size.
    """
    eps = check_real("LayerNorm", "eps", eps, low=0.0, low_open=True)
    if not isinstance(affine, bool):
        raise TypeError(f"LayerNorm: affine must be a bool, got {affine!r}")
    _check_axis_arg("LayerNorm", axis)
    return _norm_layer("layernorm", _display("LayerNorm", axis, eps, 1e-5, affine), axis, eps, affine, name, dtype)


def RMSNorm(
    axis: int | tuple[int, ...] = -1,
    eps: float = 1e-6,
    affine: bool = True,
    *,
    name: str | None = None,
    dtype=jnp.float32,
) -> Layer:
    """Root-mean-square normalization: ``y = gamma x / sqrt(mean(x^2) + eps)`` over ``axis`` of each sample.

    LayerNorm without the centring and the shift (Zhang & Sennrich 2019). See the module
    docstring for the eps convention (inside the square root, as PyTorch; default 1e-6, as Flax).

    Args:
      axis: the feature axis or axes normalized over (default the last); never the batch axis 0.
      eps: added to the mean square inside the square root, ``> 0``.
      affine: learn a scale ``gamma`` (initialised to 1), one per normalized element.
      name: the key ``serial`` files the params under (default ``rmsnorm_<position>``).
      dtype: dtype of ``gamma``.

    Params: ``{"gamma": F}`` (``{}`` when ``affine=False``). No state.

    Raises:
      TypeError/ValueError: as :func:`LayerNorm`.
    """
    eps = check_real("RMSNorm", "eps", eps, low=0.0, low_open=True)
    if not isinstance(affine, bool):
        raise TypeError(f"RMSNorm: affine must be a bool, got {affine!r}")
    _check_axis_arg("RMSNorm", axis)
    return _norm_layer("rmsnorm", _display("RMSNorm", axis, eps, 1e-6, affine), axis, eps, affine, name, dtype)
