"""An experimental convolution as im2col + one matrix product (benchmarks only; not jaxnet's Conv).

``im2col_conv(x, w)`` computes the stride-1, undilated, ``"SAME"``-padded cross-correlation of
channels-last ``x`` (``[N, *spatial, C]``) with ``w`` (``[*kernel, C, F]``, HWIO/WIO): the
``prod(kernel)`` shifted views of the padded input are concatenated along the channel axis into
``[N, *spatial, prod(kernel) * C]`` patches (in ``(offsets..., c)`` order, the order of
``w.reshape(-1, F)``) and multiplied by the flattened kernel. The gradients come from
autodiff: the input gradient is a matrix product followed by the sum of the shifted slices,
the kernel gradient one ``[prod(kernel) * C, N * prod(spatial)] @ [N * prod(spatial), F]``
product. SAME padding follows ``lax``: ``(k - 1) // 2`` before, ``k // 2`` after.
"""

from __future__ import annotations

import itertools


def im2col_patches(x, kernel):
    import jax.numpy as jnp

    spatial = x.shape[1:-1]
    pads = [(0, 0), *(((k - 1) // 2, k // 2) for k in kernel), (0, 0)]
    xp = jnp.pad(x, pads)
    views = []
    for offs in itertools.product(*(range(k) for k in kernel)):
        idx = (slice(None), *(slice(o, o + n) for o, n in zip(offs, spatial, strict=True)), slice(None))
        views.append(xp[idx])
    return jnp.concatenate(views, axis=-1)


def im2col_conv(x, w):
    """SAME, stride-1 convolution of ``x [N, *spatial, C]`` with ``w [*kernel, C, F]`` as patches @ kernel."""
    import jax.numpy as jnp
    from jax import lax

    kernel, f = w.shape[:-2], w.shape[-1]
    patches = im2col_patches(x, kernel)
    return lax.dot_general(patches, w.reshape(-1, f), (((patches.ndim - 1,), (0,)), ((), ())),
                           precision=lax.Precision.HIGHEST).astype(jnp.result_type(x, w))  # fmt: skip


def small_kernel_conv(x, w):
    """im2col for a single-channel input (the first layer: patches are tiny), ``lax`` otherwise."""
    from jax import lax

    if x.shape[-1] == 1:
        return im2col_conv(x, w)
    rank = x.ndim - 2
    dn = ("NHWC", "HWIO", "NHWC") if rank == 2 else ("NWC", "WIO", "NWC")
    return lax.conv_general_dilated(x, w, (1,) * rank, "SAME", dimension_numbers=dn)


def _lax_conv(x, w):
    from jax import lax

    rank = x.ndim - 2
    dn = ("NHWC", "HWIO", "NHWC") if rank == 2 else ("NWC", "WIO", "NWC")
    return lax.conv_general_dilated(x, w, (1,) * rank, "SAME", dimension_numbers=dn)


def _make_wgrad_conv():
    import jax
    from jax import lax

    @jax.custom_vjp
    def conv(x, w):
        return _lax_conv(x, w)

    def fwd(x, w):
        return _lax_conv(x, w), (x, w)

    def bwd(res, g):
        x, w = res
        dx = jax.vjp(lambda x: _lax_conv(x, w), x)[1](g)[0]
        if x.shape[-1] < 8:  # a thin input: lax's own kernel gradient is fast, the patches are not
            dw = jax.vjp(lambda w: _lax_conv(x, w), w)[1](g)[0]
        else:
            patches = im2col_patches(x, w.shape[:-2])
            k = patches.shape[-1]
            dw = lax.dot_general(patches.reshape(-1, k), g.reshape(-1, g.shape[-1]), (((0,), (0,)), ((), ())),
                                 precision=lax.Precision.HIGHEST).reshape(w.shape)  # fmt: skip
        return dx, dw

    conv.defvjp(fwd, bwd)
    return conv


_WGRAD_CONV = []


def wgrad_im2col_conv(x, w):
    """``lax`` forward and input gradient; the kernel gradient as ``patches^T @ dy`` (one GEMM) for C >= 8."""
    if not _WGRAD_CONV:
        _WGRAD_CONV.append(_make_wgrad_conv())
    return _WGRAD_CONV[0](x, w)
