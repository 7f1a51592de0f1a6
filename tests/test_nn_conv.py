"""Conv and ConvTranspose: float64 forward pass against explicit NumPy loops, shapes, init, errors."""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet import nn
from jaxnet.nn import initializers as I
from jaxnet.nn.conv import same_pads, transpose_pads

# --- NumPy references ----------------------------------------------------------------------------


def _pads(padding, sizes, keff, strides):
    if padding == "VALID":
        return [(0, 0)] * len(sizes)
    if padding == "SAME":
        return [same_pads(n, k, s) for n, k, s in zip(sizes, keff, strides, strict=True)]
    if isinstance(padding, int):
        return [(padding, padding)] * len(sizes)
    return [p if isinstance(p, tuple) else (p, p) for p in padding]


def ref_conv(x, w, b, strides, padding, dilation, groups):
    """Cross-correlation by loops: y[n, o, f] = b[f] + sum_{k, c in group(f)} xpad[n, o s + k d, c] w[k, c, f]."""
    rank = w.ndim - 2
    ksize, cin_g, feats = w.shape[:rank], w.shape[rank], w.shape[rank + 1]
    keff = [(k - 1) * d + 1 for k, d in zip(ksize, dilation, strict=True)]
    pads = _pads(padding, x.shape[1:-1], keff, strides)
    xp = np.pad(x, [(0, 0), *pads, (0, 0)])
    out = [(xp.shape[i + 1] - keff[i]) // strides[i] + 1 for i in range(rank)]
    fpg = feats // groups
    y = np.zeros((x.shape[0], *out, feats))
    for o in itertools.product(*(range(n) for n in out)):
        for k in itertools.product(*(range(n) for n in ksize)):
            patch = xp[(slice(None), *(oi * s + ki * d for oi, ki, s, d in zip(o, k, strides, dilation, strict=True)))]
            for g in range(groups):
                cin = slice(g * cin_g, (g + 1) * cin_g)
                fo = slice(g * fpg, (g + 1) * fpg)
                y[(slice(None), *o, fo)] += patch[:, cin] @ w[(*k, slice(None), fo)]
    return y + b


def ref_conv_transpose(x, w, b, strides, pads, dilation):
    """Scatter form: full[i s + k d] += x[i] w[K - 1 - k] (flipped kernel), then the window lax's padding selects."""
    rank = w.ndim - 2
    ksize = w.shape[:rank]
    keff = [(k - 1) * d + 1 for k, d in zip(ksize, dilation, strict=True)]
    full_shape = [(n - 1) * s + e for n, s, e in zip(x.shape[1:-1], strides, keff, strict=True)]
    full = np.zeros((x.shape[0], *full_shape, w.shape[-1]))
    for i in itertools.product(*(range(n) for n in x.shape[1:-1])):
        for k in itertools.product(*(range(n) for n in ksize)):
            at = tuple(ii * s + kk * d for ii, kk, s, d in zip(i, k, strides, dilation, strict=True))
            flipped = tuple(n - 1 - kk for n, kk in zip(ksize, k, strict=True))
            full[(slice(None), *at)] += x[(slice(None), *i)] @ w[flipped]
    out = [
        (n - 1) * s + 1 + lo + hi - e + 1 for n, s, (lo, hi), e in zip(x.shape[1:-1], strides, pads, keff, strict=True)
    ]
    # y[o] = full[o + (k_eff - 1) - lo], zero outside full.
    margin = max(max(lo, hi) for lo, hi in pads) + max(keff)
    ext = np.pad(full, [(0, 0)] + [(margin, margin)] * rank + [(0, 0)])
    index = tuple(
        slice(margin + e - 1 - lo, margin + e - 1 - lo + o) for e, (lo, _), o in zip(keff, pads, out, strict=True)
    )
    return ext[(slice(None), *index)] + b


# --- forward against the references --------------------------------------------------------------

CONV_CASES = [
    # (input spatial, channels, features, kernel, strides, padding, dilation, groups)
    ((9,), 3, 4, (3,), 1, "SAME", 1, 1),
    ((10,), 4, 6, (4,), 3, "VALID", 2, 2),
    ((11,), 2, 2, (2,), 2, ((2, 1),), 1, 2),
    ((7, 6), 3, 5, (3, 3), 1, "SAME", 1, 1),
    ((8, 9), 4, 4, (3, 2), (2, 3), "SAME", (1, 2), 4),
    ((9, 8), 2, 6, (2, 3), 2, 1, 1, 2),
    ((6, 7), 3, 3, (3, 3), 1, "VALID", 2, 1),
    ((5, 6), 2, 4, (2, 2), (1, 2), ((0, 2), 1), 1, 1),
    ((4, 5, 4), 2, 3, (2, 3, 2), 1, "SAME", 1, 1),
    ((5, 4, 6), 4, 4, (3, 2, 2), (2, 1, 2), "VALID", (1, 2, 1), 2),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=[str(c[3]) + str(c[5]) for c in CONV_CASES])
def test_conv_matches_numpy_loops(x64, case):
    spatial, cin, feats, kernel, strides, padding, dilation, groups = case
    rank = len(kernel)
    layer = nn.Conv(feats, kernel, strides, padding, dilation, groups, b_init=I.normal(0.5), dtype=jnp.float64)
    out_shape, params, state = layer.init(jax.random.PRNGKey(1), (-1, *spatial, cin))
    chex.assert_shape(params["w"], (*kernel, cin // groups, feats))
    x = np.random.default_rng(0).normal(size=(3, *spatial, cin))
    y, _ = layer.apply(params, state, x, train=False)
    per_axis = lambda v: v if isinstance(v, tuple) else (v,) * rank  # noqa: E731
    want = ref_conv(x, np.asarray(params["w"]), np.asarray(params["b"]), per_axis(strides), padding,
                    per_axis(dilation), groups)  # fmt: skip
    assert out_shape == (-1, *want.shape[1:])
    assert y.dtype == jnp.float64
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


def test_conv_channels_first_equals_channels_last(x64):
    x = np.random.default_rng(1).normal(size=(2, 7, 6, 3))
    last = nn.Conv(4, (3, 2), strides=2, dtype=jnp.float64)
    first = nn.Conv(4, (3, 2), strides=2, channels_first=True, dtype=jnp.float64)
    shape_last, params, state = last.init(jax.random.PRNGKey(0), (-1, 7, 6, 3))
    shape_first, params_first, _ = first.init(jax.random.PRNGKey(0), (-1, 3, 7, 6))
    assert shape_first == (-1, 4, 4, 3) and shape_last == (-1, 4, 3, 4)
    chex.assert_trees_all_equal_shapes(params, params_first)  # the kernel is HWIO in both layouts
    y_last, _ = last.apply(params, state, x, train=False)
    y_first, _ = first.apply(params, state, np.moveaxis(x, -1, 1), train=False)
    np.testing.assert_allclose(np.moveaxis(np.asarray(y_first), 1, -1), y_last, rtol=1e-12)


TRANSPOSE_CASES = [
    # (input spatial, channels, features, kernel, strides, padding, dilation)
    ((5,), 2, 3, (3,), 2, "SAME", 1),
    ((4,), 3, 2, (3,), 2, "VALID", 1),
    ((6,), 2, 2, (2,), 3, "VALID", 2),
    ((5,), 2, 3, (4,), 2, ((1, 2),), 1),
    ((3, 4), 2, 3, (3, 3), 2, "SAME", 1),
    ((4, 3), 3, 2, (2, 3), (1, 2), "VALID", (2, 1)),
    ((3, 3), 2, 2, (3, 2), 2, ((2, 0), (1, 1)), 1),
    ((2, 3, 2), 2, 2, (2, 2, 3), (2, 1, 2), "SAME", 1),
]


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=[str(c[3]) + str(c[5]) for c in TRANSPOSE_CASES])
def test_conv_transpose_matches_scatter_loops(x64, case):
    spatial, cin, feats, kernel, strides, padding, dilation = case
    rank = len(kernel)
    per_axis = lambda v: v if isinstance(v, tuple) else (v,) * rank  # noqa: E731
    s, d = per_axis(strides), per_axis(dilation)
    layer = nn.ConvTranspose(feats, kernel, strides, padding, dilation, b_init=I.normal(0.5), dtype=jnp.float64)
    out_shape, params, state = layer.init(jax.random.PRNGKey(2), (-1, *spatial, cin))
    x = np.random.default_rng(3).normal(size=(2, *spatial, cin))
    y, _ = layer.apply(params, state, x, train=False)
    keff = [(k - 1) * dd + 1 for k, dd in zip(kernel, d, strict=True)]
    if padding == "SAME":
        want_sizes = [n * ss for n, ss in zip(spatial, s, strict=True)]
    elif padding == "VALID":
        want_sizes = [n * ss + max(e - ss, 0) for n, ss, e in zip(spatial, s, keff, strict=True)]
    else:
        want_sizes = [
            (n - 1) * ss + 1 + lo + hi - e + 1 for n, ss, (lo, hi), e in zip(spatial, s, padding, keff, strict=True)
        ]
    assert out_shape == (-1, *want_sizes, feats) == (-1, *y.shape[1:])
    if isinstance(padding, str):  # the same numbers as jax.lax.conv_transpose (Flax's ConvTranspose)
        dn = (
            ("NWC", "WIO", "NWC")
            if rank == 1
            else ("NHWC", "HWIO", "NHWC")
            if rank == 2
            else ("NDHWC", "DHWIO", "NDHWC")
        )
        lax_y = jax.lax.conv_transpose(x, params["w"], s, padding, rhs_dilation=d, dimension_numbers=dn)
        np.testing.assert_allclose(y, lax_y + params["b"], rtol=1e-12, atol=1e-12)
    # The padding lax gets is the padding of the stride-dilated input (transpose_pads), explicit pairs as given.
    pads = transpose_pads(layer.config["padding"], keff, s)
    want = ref_conv_transpose(x, np.asarray(params["w"]), np.asarray(params["b"]), s, pads, d)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


# --- shapes, jit and vmap ------------------------------------------------------------------------


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("size", [5, 6, 7])
def test_same_padding_gives_ceil_size_over_stride(size, stride):
    out, _, _ = nn.Conv(2, (3, 3), strides=stride, dilation=2).init(jax.random.PRNGKey(0), (-1, size, size + 1, 1))
    assert out == (-1, -(-size // stride), -(-(size + 1) // stride), 2)


@pytest.mark.parametrize("make", [lambda: nn.Conv(4, (3, 3), 2, "SAME", 1, 2), lambda: nn.ConvTranspose(4, (3, 2), 2)])
def test_plain_jit_and_vmap_agree(make):
    layer = make()
    out_shape, params, state = layer.init(jax.random.PRNGKey(0), (-1, 6, 5, 2))
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 4, 6, 5, 2))  # [ensemble, batch, H, W, C]
    fn = lambda p, v: layer.apply(p, state, v, train=False)[0]  # noqa: E731
    plain = jnp.stack([fn(params, v) for v in x])
    assert plain.shape[1:] == (4, *out_shape[1:])
    np.testing.assert_allclose(jax.jit(fn)(params, x[0]), plain[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jax.vmap(fn, in_axes=(None, 0))(params, x), plain, rtol=1e-5, atol=1e-6)


def test_params_name_and_dtype(x64):
    model = nn.serial(nn.Conv(3, (2,), name="stem", dtype=jnp.float64), nn.Conv(2, (2,), use_bias=False))
    _, params, _state = model.init(jax.random.PRNGKey(0), (-1, 5, 4))
    assert set(params) == {"stem", "conv_1"} and set(params["conv_1"]) == {"w"}
    assert params["stem"]["w"].dtype == jnp.float64 and params["conv_1"]["w"].dtype == jnp.float32
    chex.assert_shape(params["stem"]["w"], (2, 4, 3))


def test_default_init_scales_with_receptive_field():
    # LeCun normal: var = 1 / fan_in with fan_in = prod(kernel) * in_channels / groups.
    _, params, _ = nn.Conv(64, (5, 5), groups=2).init(jax.random.PRNGKey(0), (-1, 8, 8, 32))
    fan_in = 5 * 5 * 16
    assert abs(float(jnp.var(params["w"])) * fan_in - 1.0) < 0.05
    he = I.he_uniform()(jax.random.PRNGKey(1), (3, 3, 3, 8, 16))
    assert abs(float(jnp.var(he)) * 27 * 8 / 2 - 1.0) < 0.05
    assert I.fans((3, 3, 3, 8, 16)) == (27 * 8, 27 * 16)
    assert I.fans((784, 128)) == (784, 128)  # Dense unchanged


# --- BatchNorm after Conv: statistics per channel over (N, H, W) ---------------------------------


def test_batchnorm_after_conv_normalises_each_channel_over_n_h_w(x64):
    model = nn.serial(nn.Conv(3, (3, 3), dtype=jnp.float64), nn.BatchNorm(momentum=1.0, dtype=jnp.float64))
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 6, 5, 2))
    x = np.random.default_rng(4).normal(size=(4, 6, 5, 2)) + np.arange(2)
    y, new_state = model.apply(params, state, x, train=True)
    np.testing.assert_allclose(jnp.mean(y, axis=(0, 1, 2)), np.zeros(3), atol=1e-12)
    np.testing.assert_allclose(jnp.var(y, axis=(0, 1, 2)), np.ones(3), rtol=1e-4)
    conv_out, _ = model.layers[0].apply(params["conv_0"], {}, x, train=False)
    z = np.asarray(conv_out).reshape(-1, 3)
    np.testing.assert_allclose(new_state["batchnorm_1"]["mean"], z.mean(0), rtol=1e-12)
    np.testing.assert_allclose(new_state["batchnorm_1"]["var"], z.var(0, ddof=1), rtol=1e-12)


def test_batchnorm_after_conv_in_fit_keeps_per_channel_running_statistics(x64):
    from jaxnet import optim
    from jaxnet import train as T

    model = nn.serial(
        nn.Conv(3, (3, 3), dtype=jnp.float64), nn.BatchNorm(momentum=1.0, dtype=jnp.float64),
        nn.GlobalAvgPool(), nn.Dense(2, dtype=jnp.float64),
    )  # fmt: skip
    rng = np.random.default_rng(5)
    x = rng.normal(size=(16, 5, 5, 2)) * np.array([1.0, 3.0]) + np.array([2.0, -1.0])
    y = rng.integers(0, 2, size=16)
    # A learning rate of 0 keeps the conv fixed, so the running statistics after one full-batch epoch
    # are exactly that batch's per-channel statistics of the conv output.
    r = T.fit(model, "softmax_cross_entropy_with_integer_labels", optim.sgd(0.0), (x, y), epochs=1, batch_size=16,
              key=jax.random.PRNGKey(0), progress=False)  # fmt: skip
    z, _ = model.layers[0].apply(r.params["conv_0"], {}, x, train=False)
    z = np.asarray(z).reshape(-1, 3)
    chex.assert_shape([r.state["batchnorm_1"]["mean"], r.state["batchnorm_1"]["var"]], (3,))
    np.testing.assert_allclose(r.state["batchnorm_1"]["mean"], z.mean(0), rtol=1e-10)
    np.testing.assert_allclose(r.state["batchnorm_1"]["var"], z.var(0, ddof=1), rtol=1e-10)


# --- bad input -----------------------------------------------------------------------------------


def _init(layer, shape):
    return layer.init(jax.random.PRNGKey(0), shape)


def test_channel_mismatch_with_initialised_conv_names_both():
    layer = nn.Conv(16, (3, 3))
    _, params, state = _init(layer, (-1, 28, 28, 3))
    with pytest.raises(ValueError, match=r"Conv\(16, \(3, 3\)\) expected input with 3 channels, got \(8, 28, 28, 5\)"):
        layer.apply(params, state, jnp.zeros((8, 28, 28, 5)), train=False)


def test_kernel_larger_than_valid_input():
    with pytest.raises(ValueError, match=r"Conv\(4, \(5, 5\)\).init: the kernel .* larger than the padded input"):
        _init(nn.Conv(4, (5, 5), padding="VALID"), (-1, 4, 8, 1))
    with pytest.raises(ValueError, match=r"larger than the padded input"):
        _init(nn.Conv(4, (3,), padding="VALID", dilation=3), (-1, 6, 1))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(features=0, kernel_size=(3,)), ValueError, r"Conv: features must be a positive int, got 0"),
        (dict(features=2.0, kernel_size=(3,)), TypeError, r"features must be an int, got float 2.0"),
        (dict(features=2, kernel_size=3), TypeError, r"kernel_size must be a tuple .* \(3,\) for 1-D .* got the int 3"),
        (dict(features=2, kernel_size=(3, 0)), ValueError, r"kernel_size must be a positive int, got 0"),
        (dict(features=2, kernel_size=(3, 1.5)), TypeError, r"kernel_size must be a positive int, got 1.5"),
        (dict(features=2, kernel_size=(1, 1, 1, 1)), TypeError, r"tuple of 1, 2 or 3 positive ints"),
        (dict(features=2, kernel_size=(3,), strides=0), ValueError, r"strides must be a positive int, got 0"),
        (dict(features=2, kernel_size=(3,), strides=(1, 2)), ValueError, r"strides must be an int or a tuple of 1"),
        (dict(features=2, kernel_size=(3, 3), dilation=-1), ValueError, r"dilation must be a positive int, got -1"),
        (dict(features=2, kernel_size=(3,), dilation=1.0), TypeError, r"dilation must be an int, got float 1.0"),
        (dict(features=6, kernel_size=(3,), groups=4), ValueError, r"groups=4 must divide features=6"),
        (dict(features=2, kernel_size=(3,), padding="FULL"), ValueError, r"padding must be 'SAME', 'VALID'.*'FULL'"),
        (dict(features=2, kernel_size=(3, 3), padding=(1, 2, 3)), ValueError, r"2 entries .* got \(1, 2, 3\)"),
        (dict(features=2, kernel_size=(3,), padding=-1), ValueError, r"padding amounts must be ints >= 0, got -1"),
        (dict(features=2, kernel_size=(3,), padding=((1, 2, 3),)), ValueError, r"int or a \(low, high\) pair"),
        (dict(features=2, kernel_size=(3,), padding=(1.5,)), TypeError, r"padding amounts must be ints >= 0"),
    ],
)
def test_bad_construction_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        nn.Conv(**kwargs)


def test_groups_not_dividing_input_channels():
    with pytest.raises(ValueError, match=r"Conv\(4, \(3,\)\).init: groups=2 must divide the input channels, got 3"):
        _init(nn.Conv(4, (3,), groups=2), (-1, 8, 3))


def test_rank_mismatch_names_layout():
    with pytest.raises(
        ValueError, match=r"Conv\(8, \(3, 3\)\).init expected a 2-D input \[N, H, W, C\] .* got \(batch, 10, 3\)"
    ):
        _init(nn.Conv(8, (3, 3)), (-1, 10, 3))
    layer = nn.ConvTranspose(8, (3,))
    _, params, state = _init(layer, (-1, 10, 3))
    with pytest.raises(ValueError, match=r"ConvTranspose\(8, \(3,\)\) expected a 1-D input \[N, W, C\]"):
        layer.apply(params, state, jnp.zeros((2, 10, 10, 3)), train=False)
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        _init(nn.Conv(8, (3, 3), channels_first=True), (-1, 3, 10))
