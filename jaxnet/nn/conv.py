"""Convolution layers over 1, 2 or 3 spatial dimensions: :func:`Conv` and :func:`ConvTranspose`.

Conventions (those of JAX/Flax and TensorFlow):

* **Channels last.** Inputs are ``[N, L, C]``, ``[N, H, W, C]`` or ``[N, D, H, W, C]``; with
  ``channels_first=True`` they are ``[N, C, L]``, ``[N, C, H, W]``, ``[N, C, D, H, W]`` (PyTorch's
  layout) and the output keeps the input's layout.
* **HWIO kernels.** ``w`` has shape ``[*kernel_size, in_channels // groups, features]`` whatever
  the input layout: the spatial axes first, then input and output channels.
* **Cross-correlation**, as every deep-learning library computes it (the kernel is not flipped):
  ``y[n, o, f] = b[f] + sum_{k, c} xpad[n, o * s + k * d, c] w[k, c, f]`` per spatial axis, with
  ``s`` the stride, ``d`` the dilation and ``xpad`` the input padded with zeros.
* **Padding**: ``"VALID"`` (none), ``"SAME"`` (output size ``ceil(in / s)``; the total padding
  ``max((out - 1) s + (k - 1) d + 1 - in, 0)`` is split with the extra element at the end, as
  ``jax.lax`` and TensorFlow do), an int ``p`` (``p`` zeros on both sides of every spatial axis),
  or one entry per spatial axis, each an int or a ``(low, high)`` pair. For ``Conv`` the output
  size along an axis is ``floor((in + low + high - (k - 1) d - 1) / s) + 1``.

The rank (1, 2 or 3) is the length of ``kernel_size``, which must be a tuple: ``Conv(16, (3,))`` is
1-D and ``Conv(16, (3, 3))`` is 2-D; a bare int is refused, because it cannot say which.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

from jaxnet.nn import initializers
from jaxnet.nn.core import check_size, fmt_shape, make_layer
from jaxnet.types import Layer

# --- geometry shared with pooling and the backprop rules ----------------------------------------


def check_window(layer: str, arg: str, value) -> tuple[int, ...]:
    """A tuple of 1 to 3 positive ints (a kernel or pooling window); a bare int is refused."""
    if isinstance(value, int) and not isinstance(value, bool):
        raise TypeError(
            f"{layer}: {arg} must be a tuple with one size per spatial axis, e.g. ({value},) for 1-D "
            f"or ({value}, {value}) for 2-D, got the int {value}"
        )
    if not isinstance(value, (tuple, list)) or not 1 <= len(value) <= 3:
        raise TypeError(f"{layer}: {arg} must be a tuple of 1, 2 or 3 positive ints, got {value!r}")
    return tuple(check_size(layer, arg, v) for v in value)


def check_per_axis(layer: str, arg: str, value, rank: int) -> tuple[int, ...]:
    """A positive int for every spatial axis, or a tuple of ``rank`` of them (strides, dilation)."""
    if isinstance(value, (tuple, list)):
        if len(value) != rank:
            raise ValueError(
                f"{layer}: {arg} must be an int or a tuple of {rank} ints (one per spatial axis), got {value!r}"
            )
        return tuple(check_size(layer, arg, v) for v in value)
    return (check_size(layer, arg, value),) * rank


def check_padding(layer: str, padding, rank: int):
    """``"SAME"``, ``"VALID"`` or a tuple of ``rank`` ``(low, high)`` pairs of ints >= 0."""
    if isinstance(padding, str):
        if padding.upper() in ("SAME", "VALID"):
            return padding.upper()
        raise ValueError(f"{layer}: padding must be 'SAME', 'VALID', an int or (low, high) pairs, got {padding!r}")

    def amount(v):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{layer}: padding amounts must be ints >= 0, got {v!r} in padding={padding!r}")
        if v < 0:
            raise ValueError(f"{layer}: padding amounts must be ints >= 0, got {v} in padding={padding!r}")
        return v

    if isinstance(padding, int) and not isinstance(padding, bool):
        return ((amount(padding),) * 2,) * rank
    if not isinstance(padding, (tuple, list)) or len(padding) != rank:
        raise ValueError(
            f"{layer}: padding must be 'SAME', 'VALID', an int, or {rank} entries (one per spatial axis), "
            f"each an int or a (low, high) pair; got {padding!r}"
        )
    pairs = []
    for p in padding:
        if isinstance(p, (tuple, list)):
            if len(p) != 2:
                raise ValueError(f"{layer}: each padding entry must be an int or a (low, high) pair, got {p!r}")
            pairs.append((amount(p[0]), amount(p[1])))
        else:
            pairs.append((amount(p),) * 2)
    return tuple(pairs)


def same_pads(size: int, window: int, stride: int) -> tuple[int, int]:
    """``"SAME"`` padding of one axis: output ``ceil(size / stride)``, the odd element at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return total // 2, total - total // 2


def explicit_pads(padding, sizes, windows, strides) -> tuple[tuple[int, int], ...]:
    """``(low, high)`` per spatial axis for a checked padding spec and effective window sizes."""
    if padding == "VALID":
        return ((0, 0),) * len(sizes)
    if padding == "SAME":
        return tuple(same_pads(n, k, s) for n, k, s in zip(sizes, windows, strides, strict=True))
    return tuple(padding)


def spatial_axes(rank: int, channels_first: bool) -> tuple[int, ...]:
    """Positions of the spatial axes in an input of the given rank and layout."""
    return tuple(range(2, rank + 2)) if channels_first else tuple(range(1, rank + 1))


def dimension_numbers(rank: int, channels_first: bool) -> lax.ConvDimensionNumbers:
    """``lax`` dimension numbers for inputs in the given layout and HWIO kernels."""
    io = (0, 1, *tuple(range(2, rank + 2))) if channels_first else (0, rank + 1, *tuple(range(1, rank + 1)))
    return lax.ConvDimensionNumbers(lhs_spec=io, rhs_spec=(rank + 1, rank, *tuple(range(rank))), out_spec=io)


def effective(kernel, dilation) -> tuple[int, ...]:
    """The extent ``(k - 1) d + 1`` of a dilated kernel along each axis."""
    return tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation, strict=True))


def conv_geometry(cfg: dict, spatial) -> dict:
    """The ``lax.conv_general_dilated`` arguments of a Conv/ConvTranspose for input spatial sizes."""
    rank, keff = len(cfg["kernel_size"]), effective(cfg["kernel_size"], cfg["dilation"])
    if cfg["transpose"]:
        pads = transpose_pads(cfg["padding"], keff, cfg["strides"])
        return dict(window_strides=(1,) * rank, padding=pads, lhs_dilation=cfg["strides"], rhs_dilation=cfg["dilation"])
    pads = explicit_pads(cfg["padding"], spatial, keff, cfg["strides"])
    return dict(window_strides=cfg["strides"], padding=pads, lhs_dilation=(1,) * rank, rhs_dilation=cfg["dilation"])


def transpose_pads(padding, keff, strides) -> tuple[tuple[int, int], ...]:
    """Padding of the stride-dilated input that gives ``lax.conv_transpose``'s output sizes.

    ``"SAME"``: output ``in * s``; ``"VALID"``: ``in * s + max(k_eff - s, 0)``; explicit pairs are
    used as they are (``out = (in - 1) s + 1 + low + high - k_eff + 1``).
    """
    if not isinstance(padding, str):
        return tuple(padding)
    pads = []
    for k, s in zip(keff, strides, strict=True):
        if padding == "SAME":
            total = k + s - 2
            low = k - 1 if s > k - 1 else -(-total // 2)
        else:
            total = k + s - 2 + max(k - s, 0)
            low = k - 1
        pads.append((low, total - low))
    return tuple(pads)


def window_out(size: int, pads, window: int, stride: int) -> int:
    """Output length of a strided window over a padded axis of ``size``: ``floor((size + low + high - k) / s) + 1``."""
    return (size + pads[0] + pads[1] - window) // stride + 1


# --- gradients in XLA:CPU's fast layout ------------------------------------------------------------

GRAD_LAYOUTS = ("auto", "channels_last", "autodiff")
"""The values of ``grad_layout`` in :func:`Conv` and :func:`ConvTranspose`."""


def _geo_key(geo: dict) -> tuple:
    """A conv geometry as a hashable tuple of ``(name, value)`` (a static argument of :func:`conv_channels_last`)."""
    return tuple((k, tuple(tuple(p) if isinstance(p, (tuple, list)) else p for p in v)) for k, v in sorted(geo.items()))


def _channels_last_dn(rank: int) -> lax.ConvDimensionNumbers:
    return dimension_numbers(rank, False)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def conv_channels_last(x, w, geo: tuple, groups: int):
    """A channels-last convolution whose ``jax.grad`` runs in XLA:CPU's fast layout, also inside loops.

    ``y = lax.conv_general_dilated(x, w, dimension_numbers=(NHWC, HWIO, NHWC), feature_group_count=groups,
    **dict(geo))`` for inputs ``x`` of shape ``[N, *spatial, C]`` and HWIO kernels ``w`` of shape
    ``[*K, C // groups, F]`` (1, 2 or 3 spatial axes; any ``window_strides``, ``padding``,
    ``lhs_dilation``, ``rhs_dilation``); the result has ``x``'s dtype, which must equal ``w``'s.

    Why (JAX issue 12868): ``jax.grad`` transposes a convolution into convolutions with swapped
    dimension numbers (``f01b_i01o->01bf`` for the kernel gradient, ``b01f_01oi->b01f`` for the
    input gradient). In a single jitted step XLA:CPU rewrites them into its canonical layout
    (``b01f_01io->b01f``, run by its Eigen/oneDNN kernels), but in the body of a ``lax.scan`` or
    ``while`` it keeps them and emits generic loops, 10 to 100 times slower.

    How: a ``jax.custom_jvp`` whose tangent is ``conv(x_dot, w) + conv(x, w_dot)`` with each term's
    operands stored in the layout that makes JAX's own transpose rules produce canonical
    convolutions: the input-tangent term reads the kernel transposed to ``[*K, F, C/G]`` (its
    transpose, the input gradient, then reads the flipped kernel as ``HWIO`` with the output
    gradient ``[N, *S, F]``), and the kernel-tangent term reads ``x`` transposed to
    ``[C/G, *S, G * N]`` and ``w_dot`` to ``[C/G, *K, F]``, with ``batch_group_count=G`` and
    output ``[*S_out, N, F]`` (its transpose, the kernel gradient, is then the channels-last
    convolution ``[C/G, *S, G * N] x [*S_out, N, F] -> [C/G, *K, F]`` with
    ``feature_group_count=G``). The padding, flips and dilations of the gradients are therefore
    JAX's own, and ``jax.grad`` of this function equals ``jax.grad`` of the plain convolution
    (the same sums in the same order: equal in practice to the last bit). Being a ``custom_jvp``,
    it keeps forward mode: ``jax.jvp``, ``jax.jacfwd`` and ``jax.hessian`` work (the forward-mode
    tangent convolutions run in the non-canonical layouts, which is correct but not fast).
    """
    return lax.conv_general_dilated(x, w, dimension_numbers=_channels_last_dn(w.ndim - 2), feature_group_count=groups,
                                    **dict(geo))  # fmt: skip


def _conv_channels_last_jvp(geo, groups, primals, tangents):
    x, w = primals
    xd, wd = tangents
    rank = w.ndim - 2
    kw = dict(geo)
    y = conv_channels_last(x, w, geo, groups)
    sp = tuple(range(1, rank + 1))
    terms = []
    if not isinstance(xd, SymbolicZero):
        dn = lax.ConvDimensionNumbers(lhs_spec=(0, rank + 1, *sp), rhs_spec=(rank, rank + 1, *range(rank)),
                                      out_spec=(0, rank + 1, *sp))  # fmt: skip
        wt = jnp.swapaxes(w, rank, rank + 1)  # [*K, F, C/G]
        terms.append(lax.conv_general_dilated(xd, wt, dimension_numbers=dn, feature_group_count=groups, **kw))
    if not isinstance(wd, SymbolicZero):
        n, c = x.shape[0], x.shape[-1]
        xs = x.reshape(n, *x.shape[1:-1], groups, c // groups)
        xs = jnp.transpose(xs, (rank + 2, *sp, rank + 1, 0)).reshape(c // groups, *x.shape[1:-1], groups * n)
        wdt = jnp.moveaxis(wd, rank, 0)  # [C/G, *K, F]
        dn = lax.ConvDimensionNumbers(lhs_spec=(rank + 1, 0, *sp), rhs_spec=(rank + 1, 0, *sp),
                                      out_spec=(rank, rank + 1, *range(rank)))  # fmt: skip
        yb = lax.conv_general_dilated(xs, wdt, dimension_numbers=dn, batch_group_count=groups, **kw)
        terms.append(jnp.moveaxis(yb, rank, 0))
    if not terms:
        return y, jnp.zeros_like(y)
    return y, terms[0] if len(terms) == 1 else terms[0] + terms[1]


conv_channels_last.defjvp(_conv_channels_last_jvp, symbolic_zeros=True)


def conv_forward(x, w, geo: dict, groups: int, channels_first: bool, grad_layout: str):
    """A Conv/ConvTranspose convolution (HWIO kernel) with the gradient rule that ``grad_layout`` selects.

    * ``"channels_last"``: :func:`conv_channels_last` (a ``channels_first`` input is transposed
      to channels-last and back around it), whose gradients are canonical convolutions;
    * ``"autodiff"``: the plain convolution in the input's layout, differentiated by JAX's rules;
    * ``"auto"``: ``"channels_last"`` in a program lowered for the CPU, ``"autodiff"`` for any other
      platform, chosen per lowering platform by ``jax.lax.platform_dependent``.

    ``x`` and ``w`` must have the same floating dtype; the result has it too.
    """
    rank = w.ndim - 2

    def plain(x, w):
        return lax.conv_general_dilated(
            x, w, dimension_numbers=dimension_numbers(rank, channels_first), feature_group_count=groups, **geo
        )

    def fast(x, w):
        if channels_first:
            x = jnp.moveaxis(x, 1, -1)
        y = conv_channels_last(x, w, _geo_key(geo), groups)
        return jnp.moveaxis(y, -1, 1) if channels_first else y

    if grad_layout == "autodiff":
        return plain(x, w)
    if grad_layout == "channels_last":
        return fast(x, w)
    return lax.platform_dependent(x, w, cpu=fast, default=plain)


# --- the layers -----------------------------------------------------------------------------------


def _conv_layer(
    kind,
    features,
    kernel_size,
    strides,
    padding,
    dilation,
    groups,
    w_init,
    b_init,
    use_bias,
    channels_first,
    name,
    dtype,
    grad_layout,
):
    title = "ConvTranspose" if kind == "conv_transpose" else "Conv"
    check_size(title, "features", features)
    kernel_size = check_window(title, "kernel_size", kernel_size)
    rank = len(kernel_size)
    display = f"{title}({features}, {kernel_size})"
    strides = check_per_axis(display, "strides", strides, rank)
    dilation = check_per_axis(display, "dilation", dilation, rank)
    groups = check_size(display, "groups", groups)
    padding = check_padding(display, padding, rank)
    if not isinstance(channels_first, bool):
        raise TypeError(f"{display}: channels_first must be a bool, got {channels_first!r}")
    if grad_layout not in GRAD_LAYOUTS:
        raise ValueError(f"{display}: grad_layout must be one of {GRAD_LAYOUTS}, got {grad_layout!r}")
    if features % groups:
        raise ValueError(f"{display}: groups={groups} must divide features={features}")
    w_init = initializers.get(w_init, where=f"{display} w_init")
    b_init = initializers.get(b_init, where=f"{display} b_init")
    cfg = dict(
        features=features, kernel_size=kernel_size, strides=strides, padding=padding, dilation=dilation,
        groups=groups, use_bias=use_bias, channels_first=channels_first, transpose=kind == "conv_transpose",
    )  # fmt: skip
    layout = (
        ("[N, C, " if channels_first else "[N, ") + ", ".join("DHW"[3 - rank :]) + ("]" if channels_first else ", C]")
    )
    chan = 1 if channels_first else rank + 1
    spat = spatial_axes(rank, channels_first)

    def check_input(shape, where):
        if len(shape) != rank + 2:
            raise ValueError(
                f"{display}{where} expected a {rank}-D input {layout} ({rank + 2} axes), got {fmt_shape(shape)}; "
                f"kernel_size {kernel_size} has {rank} spatial axes"
            )
        sizes = [shape[a] for a in spat]
        if -1 in sizes or shape[chan] == -1:
            raise ValueError(f"{display}{where}: spatial and channel sizes must be known, got {fmt_shape(shape)}")
        if shape[chan] % groups:
            raise ValueError(
                f"{display}{where}: groups={groups} must divide the input channels, got {shape[chan]} channels "
                f"in {fmt_shape(shape)}"
            )
        geo = conv_geometry(cfg, sizes)
        keff = effective(kernel_size, dilation)
        out = []
        for n, p, k, s, a in zip(sizes, geo["padding"], keff, geo["window_strides"], geo["lhs_dilation"], strict=True):
            o = window_out((n - 1) * a + 1, p, k, s)
            if o < 1:
                raise ValueError(
                    f"{display}{where}: the kernel (extent {keff} with dilation {dilation}) is larger than the "
                    f"padded input {fmt_shape(shape)} with padding {geo['padding']}; use smaller kernels, "
                    "padding='SAME' or a larger input"
                )
            out.append(o)
        return geo, out

    def init(key, input_shape):
        _, out = check_input(input_shape, ".init")
        in_ch = input_shape[chan]
        kw, kb = jax.random.split(key)
        params = {"w": w_init(kw, (*kernel_size, in_ch // groups, features), dtype)}
        if use_bias:
            params["b"] = b_init(kb, (features,), dtype)
        shape = [input_shape[0], *out]
        shape.insert(chan, features)
        return tuple(shape), params, {}

    def apply(params, state, x, *, key, train):
        x = jnp.asarray(x)
        w = params["w"]
        geo, _ = check_input(x.shape, "")
        if x.shape[chan] != w.shape[-2] * groups:
            raise ValueError(f"{display} expected input with {w.shape[-2] * groups} channels, got {fmt_shape(x.shape)}")
        dt = jnp.result_type(x.dtype, w.dtype)
        if not jnp.issubdtype(dt, jnp.inexact):
            dt = jnp.float32
        y = conv_forward(x.astype(dt), w.astype(dt), geo, groups, channels_first, grad_layout)
        if use_bias:
            y = y + params["b"].astype(dt).reshape((features,) + (1,) * rank if channels_first else (features,))
        return y, state

    return make_layer(display, init, apply, kind=kind, config=cfg, scope=name)


def Conv(
    features: int,
    kernel_size,
    strides=1,
    padding="SAME",
    dilation=1,
    groups: int = 1,
    w_init="lecun_normal",
    b_init="zeros",
    *,
    use_bias: bool = True,
    channels_first: bool = False,
    name: str | None = None,
    dtype=jnp.float32,
    grad_layout: str = "auto",
) -> Layer:
    """An N-d convolution (cross-correlation) layer over 1, 2 or 3 spatial axes, on ``lax.conv_general_dilated``.

    ``y[n, o, f] = b[f] + sum_{k, c} xpad[n, o * s + k * d, c] w[k, c, f]`` per spatial axis
    (see the module docstring for layouts and padding). With ``groups = G`` the input and
    output channels are split into ``G`` groups and group ``g`` of the output sees only group
    ``g`` of the input (``groups = in_channels`` is a depthwise convolution).

    Args:
      features: number of output channels ``F``.
      kernel_size: a tuple of 1, 2 or 3 positive ints; its length is the number of spatial axes.
      strides: an int or one int per spatial axis (default 1).
      padding: ``"SAME"`` (default), ``"VALID"``, an int, or per axis an int or ``(low, high)``.
      dilation: kernel dilation ``d`` (``rhs_dilation`` in ``lax``), an int or one per axis.
      groups: feature groups; must divide the input channels and ``features``.
      w_init: kernel initializer (default LeCun normal with ``fan_in = prod(kernel_size) * C_in / G``).
      b_init: bias initializer (default zeros).
      use_bias: whether to add ``b``.
      channels_first: inputs ``[N, C, *spatial]`` instead of ``[N, *spatial, C]``.
      name: the key of this layer's params in a ``serial`` model.
      dtype: dtype of the params.
      grad_layout: how ``jax.grad`` differentiates the convolution: ``"auto"`` (default) uses
        :func:`conv_channels_last`, whose input and kernel gradients are convolutions in
        XLA:CPU's fast channels-last layout even inside ``lax.scan`` (JAX issue 12868), in programs
        lowered for the CPU and JAX's own rules elsewhere (cuDNN and TPUs handle every layout);
        ``"channels_last"`` uses that rule on every platform; ``"autodiff"`` never does. All three
        give the same values; see the performance guide.

    Params: ``{"w": [*kernel_size, C_in // groups, features], "b": [features]}``.

    Returns:
      A :class:`~jaxnet.types.Layer`; ``init`` infers the output shape (the batch may be ``-1``).

    Raises:
      TypeError/ValueError: at construction for an int or bad ``kernel_size``, non-positive or
        non-int strides/dilation/groups, a bad padding spec or ``grad_layout``, or ``groups`` not dividing
        ``features``; at init/apply for an input with the wrong number of axes, a channel count
        ``groups`` does not divide or that differs from the initialised one, or a kernel larger
        than the padded input.

    Example::

        layer = Conv(16, (3, 3), strides=2)
        out_shape, params, state = layer.init(key, (-1, 28, 28, 1))   # (-1, 14, 14, 16)
    """
    return _conv_layer(
        "conv", features, kernel_size, strides, padding, dilation, groups, w_init, b_init, use_bias, channels_first,
        name, dtype, grad_layout,
    )  # fmt: skip


def ConvTranspose(
    features: int,
    kernel_size,
    strides=1,
    padding="SAME",
    dilation=1,
    groups: int = 1,
    w_init="lecun_normal",
    b_init="zeros",
    *,
    use_bias: bool = True,
    channels_first: bool = False,
    name: str | None = None,
    dtype=jnp.float32,
    grad_layout: str = "auto",
) -> Layer:
    """A transposed ("fractionally strided") convolution, with ``lax.conv_transpose``'s conventions (as Flax's).

    The input is dilated by the strides (``s - 1`` zeros between neighbours), padded, and
    cross-correlated with the kernel at stride 1 (the kernel is not flipped:
    ``transpose_kernel=False``, Flax's ``ConvTranspose``). Output size per spatial axis:

    * ``"SAME"``: ``in * s``;
    * ``"VALID"``: ``in * s + max((k - 1) d + 1 - s, 0)``;
    * explicit ``(low, high)``: the padding of the dilated input,
      ``(in - 1) s + 1 + low + high - (k - 1) d``. (PyTorch's ``padding=p`` is
      ``low = high = (k - 1) d - p`` here.)

    Args and Params: as :func:`Conv` (the kernel is ``[*kernel_size, C_in // groups, features]``).

    Raises:
      TypeError/ValueError: as :func:`Conv`.
    """
    return _conv_layer(
        "conv_transpose", features, kernel_size, strides, padding, dilation, groups, w_init, b_init, use_bias,
        channels_first, name, dtype, grad_layout,
    )  # fmt: skip
