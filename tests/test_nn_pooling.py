"""MaxPool, AvgPool, GlobalMaxPool, GlobalAvgPool: float64 forward against NumPy loops, shapes, errors."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet import nn
from jaxnet.nn.conv import same_pads


def ref_pool(x, window, strides, padding, reduce):
    """Loops over windows of x [N, *S, C] padded with NaN; ``reduce`` ignores the NaNs (real elements only)."""
    rank = len(window)
    if padding == "VALID":
        pads = [(0, 0)] * rank
    elif padding == "SAME":
        pads = [same_pads(n, k, s) for n, k, s in zip(x.shape[1:-1], window, strides, strict=True)]
    elif isinstance(padding, int):
        pads = [(padding, padding)] * rank
    else:
        pads = [p if isinstance(p, tuple) else (p, p) for p in padding]
    xp = np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=np.nan)
    out = [(xp.shape[i + 1] - window[i]) // strides[i] + 1 for i in range(rank)]
    y = np.zeros((x.shape[0], *out, x.shape[-1]))
    for o in itertools.product(*(range(n) for n in out)):
        box = tuple(slice(oi * s, oi * s + k) for oi, s, k in zip(o, strides, window, strict=True))
        patch = xp[(slice(None), *box)].reshape(x.shape[0], -1, x.shape[-1])
        y[(slice(None), *o)] = reduce(patch, axis=1)
    return y


POOL_CASES = [
    # (input spatial, window, strides, padding)
    ((8,), (2,), None, "VALID"),
    ((9,), (3,), 2, "SAME"),
    ((7,), (3,), 1, ((2, 1),)),
    ((6, 7), (2, 2), None, "VALID"),
    ((7, 7), (3, 3), 2, "SAME"),
    ((5, 6), (3, 2), (1, 2), 1),
    ((6, 5), (2, 3), 1, ((1, 0), (2, 1))),
    ((4, 5, 6), (2, 2, 2), None, "SAME"),
    ((5, 4, 5), (3, 2, 3), (2, 1, 2), ((1, 1), 0, (2, 0))),
]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", POOL_CASES, ids=[f"{c[1]}{c[3]}" for c in POOL_CASES])
def test_pool_matches_numpy_loops(x64, kind, case):
    spatial, window, strides, padding = case
    layer = (nn.MaxPool if kind == "max" else nn.AvgPool)(window, strides, padding)
    out_shape, params, state = layer.init(jax.random.PRNGKey(0), (-1, *spatial, 3))
    assert params == {} and state == {}
    x = np.random.default_rng(0).normal(size=(2, *spatial, 3))
    y, _ = layer.apply(params, state, x, train=False)
    s = window if strides is None else (strides if isinstance(strides, tuple) else (strides,) * len(window))
    want = ref_pool(x, window, s, padding, np.nanmax if kind == "max" else np.nanmean)
    assert out_shape == (-1, *want.shape[1:]) and y.dtype == jnp.float64
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-14)


def test_avg_pool_counts_only_real_elements():
    # Constant input: every window averages to the constant, border windows included.
    y, _ = nn.AvgPool((3, 3), strides=1, padding="SAME").apply({}, {}, jnp.full((1, 4, 5, 2), 7.0), train=False)
    np.testing.assert_allclose(y, 7.0)
    # A corner window of a 1-padded 2x2 pool holds one real element: its value, not a quarter of it.
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    y, _ = nn.AvgPool((2, 2), strides=2, padding=1).apply({}, {}, x, train=False)
    assert float(y[0, 0, 0, 0]) == 0.0 and float(y[0, 0, 1, 0]) == (1.0 + 2.0) / 2
    assert float(y[0, 2, 2, 0]) == 15.0


def test_max_pool_pads_with_minus_infinity():
    x = -jnp.ones((1, 3, 3, 1))
    y, _ = nn.MaxPool((2, 2), strides=1, padding="SAME").apply({}, {}, x, train=False)
    np.testing.assert_array_equal(y, -1.0)


def test_channels_first(x64):
    x = np.random.default_rng(1).normal(size=(2, 6, 5, 3))
    for make in (nn.MaxPool, nn.AvgPool):
        last, _ = make((2, 2), 1, "SAME").apply({}, {}, x, train=False)
        first, _ = make((2, 2), 1, "SAME", channels_first=True).apply({}, {}, np.moveaxis(x, -1, 1), train=False)
        np.testing.assert_allclose(np.moveaxis(np.asarray(first), 1, -1), last, rtol=1e-12)
    for make, ref in ((nn.GlobalMaxPool, np.max), (nn.GlobalAvgPool, np.mean)):
        shape, _, _ = make(channels_first=True).init(jax.random.PRNGKey(0), (-1, 3, 6, 5))
        y, _ = make(channels_first=True).apply({}, {}, np.moveaxis(x, -1, 1), train=False)
        assert shape == (-1, 3)
        np.testing.assert_allclose(y, ref(x, axis=(1, 2)), rtol=1e-12)


@pytest.mark.parametrize("spatial", [(7,), (4, 5), (3, 4, 2)])
def test_global_pools(x64, spatial):
    x = np.random.default_rng(2).normal(size=(3, *spatial, 4))
    axes = tuple(range(1, len(spatial) + 1))
    for make, ref in ((nn.GlobalMaxPool, np.max), (nn.GlobalAvgPool, np.mean)):
        shape, _, _ = make().init(jax.random.PRNGKey(0), (-1, *spatial, 4))
        y, _ = make().apply({}, {}, x, train=False)
        assert shape == (-1, 4) == (-1, *y.shape[1:])
        np.testing.assert_allclose(y, ref(x, axis=axes), rtol=1e-12)


@pytest.mark.parametrize("make", [lambda: nn.MaxPool((3, 2), 2, "SAME"), lambda: nn.AvgPool((2, 2), 1, 1)])
def test_plain_jit_and_vmap_agree(make):
    layer = make()
    out_shape, _, _ = layer.init(jax.random.PRNGKey(0), (-1, 7, 6, 2))
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 4, 7, 6, 2))
    fn = lambda v: layer.apply({}, {}, v, train=False)[0]  # noqa: E731
    plain = jnp.stack([fn(v) for v in x])
    assert plain.shape[1:] == (4, *out_shape[1:])
    np.testing.assert_allclose(jax.jit(fn)(x[0]), plain[0], rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(fn)(x), plain, rtol=1e-6)


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: nn.MaxPool(2), TypeError, r"MaxPool: window must be a tuple .* \(2, 2\) for 2-D, got the int 2"),
        (lambda: nn.AvgPool((2, 0)), ValueError, r"AvgPool: window must be a positive int, got 0"),
        (lambda: nn.MaxPool((2, 2), strides=-1), ValueError, r"MaxPool\(\(2, 2\)\): strides must be a positive int"),
        (lambda: nn.MaxPool((2, 2), strides=1.5), TypeError, r"strides must be a positive int, got 1.5"),
        (lambda: nn.AvgPool((2,), padding="same-ish"), ValueError, r"padding must be 'SAME', 'VALID'"),
        (lambda: nn.AvgPool((2, 2), padding=2), ValueError, r"padding .* must be smaller than the window"),
        (lambda: nn.MaxPool((2,), channels_first=1), TypeError, r"channels_first must be a bool, got 1"),
    ],
)
def test_bad_construction_arguments(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_bad_inputs_at_init_and_apply():
    with pytest.raises(
        ValueError, match=r"MaxPool\(\(2, 2\)\).init expected a 2-D input \[N, H, W, C\] .* got \(batch, 8, 3\)"
    ):
        nn.MaxPool((2, 2)).init(jax.random.PRNGKey(0), (-1, 8, 3))
    with pytest.raises(ValueError, match=r"AvgPool\(\(5,\)\).init: the window \(5,\) is larger than the padded input"):
        nn.AvgPool((5,)).init(jax.random.PRNGKey(0), (-1, 4, 3))
    with pytest.raises(ValueError, match=r"AvgPool\(\(2,\)\) expected a 1-D input \[N, W, C\] .* got \(2, 4, 4, 3\)"):
        nn.AvgPool((2,)).apply({}, {}, jnp.zeros((2, 4, 4, 3)), train=False)
    with pytest.raises(ValueError, match=r"GlobalAvgPool\(\).init expected an input with a batch, 1 to 3 spatial"):
        nn.GlobalAvgPool().init(jax.random.PRNGKey(0), (-1, 3))
