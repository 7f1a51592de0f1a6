"""LayerNorm and RMSNorm against float64 NumPy formulas; shapes, jit/vmap, dtypes and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet import nn


def _ln_ref(x, axes, eps, gamma=None, beta=None):
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)  # biased, as PyTorch
    y = (x - mu) / np.sqrt(var + eps)
    if gamma is not None:
        y = y * gamma + beta
    return y


def _rms_ref(x, axes, eps, gamma=None):
    y = x / np.sqrt((x**2).mean(axis=axes, keepdims=True) + eps)
    return y if gamma is None else y * gamma


def _bshape(shape, axes):
    return tuple(shape[i] if i in axes else 1 for i in range(len(shape)))


CASES = [  # (input shape, axis, normalized axes as non-negative ints)
    ((5, 7), -1, (1,)),
    ((4, 3, 6), -1, (2,)),
    ((4, 3, 6), (1, 2), (1, 2)),
    ((2, 3, 4, 5), (-3, -1), (1, 3)),
    ((3, 6, 2), 1, (1,)),
]


@pytest.mark.parametrize("shape, axis, axes", CASES)
@pytest.mark.parametrize("eps", [1e-5, 0.3])
def test_layer_norm_matches_numpy(x64, shape, axis, axes, eps):
    rng = np.random.default_rng(0)
    x = 3.0 + 2.0 * rng.normal(size=shape)
    layer = nn.LayerNorm(axis=axis, eps=eps, dtype=jnp.float64)
    out_shape, params, state = layer.init(jax.random.PRNGKey(0), (-1, *shape[1:]))
    assert out_shape == (-1, *shape[1:]) and state == {}
    feat = tuple(shape[a] for a in axes)
    assert params["gamma"].shape == feat and params["gamma"].dtype == jnp.float64
    gamma, beta = rng.normal(size=feat), rng.normal(size=feat)
    params = {"gamma": jnp.asarray(gamma), "beta": jnp.asarray(beta)}
    y, new_state = layer.apply(params, state, jnp.asarray(x), train=True)
    want = _ln_ref(x, axes, eps, gamma.reshape(_bshape(shape, axes)), beta.reshape(_bshape(shape, axes)))
    np.testing.assert_allclose(np.asarray(y), want, rtol=1e-12, atol=1e-12)
    assert new_state == {}


@pytest.mark.parametrize("shape, axis, axes", CASES)
def test_rms_norm_matches_numpy(x64, shape, axis, axes):
    rng = np.random.default_rng(1)
    x = 1.0 + rng.normal(size=shape)
    layer = nn.RMSNorm(axis=axis, dtype=jnp.float64)
    _, params, _ = layer.init(jax.random.PRNGKey(0), (-1, *shape[1:]))
    assert set(params) == {"gamma"}
    gamma = rng.normal(size=params["gamma"].shape)
    y, _ = layer.apply({"gamma": jnp.asarray(gamma)}, {}, jnp.asarray(x), train=False)
    want = _rms_ref(x, axes, 1e-6, gamma.reshape(_bshape(shape, axes)))
    np.testing.assert_allclose(np.asarray(y), want, rtol=1e-12, atol=1e-12)


def test_without_affine_there_are_no_params_and_the_output_is_normalized(x64):
    x = jnp.asarray(np.random.default_rng(2).normal(size=(6, 10)) * 5 + 2)
    ln, rms = nn.LayerNorm(affine=False), nn.RMSNorm(affine=False, eps=1e-12)
    assert ln.init(jax.random.PRNGKey(0), (-1, 10))[1] == {}
    y, _ = ln.apply({}, {}, x, train=False)
    np.testing.assert_allclose(np.asarray(y.mean(-1)), 0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(y.var(-1)), 1 - 1e-5 / np.asarray(x.var(-1) + 1e-5), rtol=1e-12)
    z, _ = rms.apply({}, {}, x, train=False)
    np.testing.assert_allclose(np.asarray((z**2).mean(-1)), 1, rtol=1e-9)


def test_a_sample_does_not_depend_on_the_rest_of_the_batch():
    layer = nn.LayerNorm()
    _, params, state = layer.init(jax.random.PRNGKey(0), (-1, 4))
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 4))
    full, _ = layer.apply(params, state, x, train=True)
    alone, _ = layer.apply(params, state, x[2:3], train=True)
    np.testing.assert_allclose(np.asarray(full[2:3]), np.asarray(alone), rtol=1e-6)


@pytest.mark.parametrize("make", [lambda: nn.LayerNorm(axis=(1, 2)), lambda: nn.RMSNorm()])
def test_plain_jit_and_vmap_agree(make):
    layer = make()
    _, params, state = layer.init(jax.random.PRNGKey(0), (-1, 3, 4))
    params = jax.tree_util.tree_map(lambda p: p + 0.5, params)
    xs = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 3, 4))
    plain = jnp.stack([layer.apply(params, state, x, train=True)[0] for x in xs])
    jitted = jax.jit(lambda x: layer.apply(params, state, x, train=True)[0])
    mapped = jax.vmap(lambda x: layer.apply(params, state, x, train=True)[0])(xs)
    np.testing.assert_allclose(np.asarray(jnp.stack([jitted(x) for x in xs])), np.asarray(plain), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(mapped), np.asarray(plain), rtol=1e-5)


def test_half_precision_input_keeps_its_dtype_and_statistics():
    layer = nn.LayerNorm(affine=False)
    x = (1000.0 + jnp.arange(8.0).reshape(2, 4)).astype(jnp.bfloat16)
    y, _ = layer.apply({}, {}, x, train=False)
    assert y.dtype == jnp.bfloat16
    np.testing.assert_allclose(
        np.asarray(y, np.float32), np.asarray(_ln_ref(np.asarray(x, np.float64), (1,), 1e-5)), atol=2e-2
    )


@pytest.mark.parametrize(
    "make, error, words",
    [
        (lambda: nn.LayerNorm(eps=0.0), ValueError, r"LayerNorm: eps must be > 0"),
        (lambda: nn.RMSNorm(eps=-1.0), ValueError, r"RMSNorm: eps must be > 0"),
        (lambda: nn.LayerNorm(affine="yes"), TypeError, r"LayerNorm: affine must be a bool"),
        (lambda: nn.LayerNorm(axis=1.5), TypeError, r"LayerNorm: axis must be an int or a non-empty tuple of ints"),
        (lambda: nn.RMSNorm(axis=()), TypeError, r"RMSNorm: axis must be an int or a non-empty tuple"),
    ],
)
def test_bad_constructor_arguments(make, error, words):
    with pytest.raises(error, match=words):
        make()


@pytest.mark.parametrize(
    "axis, words",
    [
        (2, r"LayerNorm\(axis=2\)\.init: axis=2 is out of range for an input with 2 axes"),
        (-3, r"axis=-3 is out of range for an input with 2 axes"),
        (0, r"axis=0 is the batch axis"),
        (-2, r"axis=0 is the batch axis"),
    ],
)
def test_axis_out_of_range_or_batch_is_an_error_at_init(axis, words):
    with pytest.raises(ValueError, match=words):
        nn.LayerNorm(axis=axis).init(jax.random.PRNGKey(0), (-1, 4))


def test_repeated_axis_and_unknown_sizes_are_errors():
    with pytest.raises(ValueError, match=r"names the same axis twice"):
        nn.RMSNorm(axis=(1, -1)).init(jax.random.PRNGKey(0), (-1, 4))
    with pytest.raises(ValueError, match=r"normalized axes \(1,\) of input_shape must be known"):
        nn.LayerNorm(axis=1).init(jax.random.PRNGKey(0), (-1, -1, 3))


def test_params_of_the_wrong_shape_are_named():
    layer = nn.LayerNorm()
    _, params, state = layer.init(jax.random.PRNGKey(0), (-1, 4))
    with pytest.raises(ValueError, match=r"LayerNorm\(\): params\['gamma'\] must have shape \(5,\).*got \(4,\)"):
        layer.apply(params, state, jnp.ones((2, 5)), train=False)
    with pytest.raises(ValueError, match=r"params must have keys \['gamma', 'beta'\]"):
        layer.apply({}, state, jnp.ones((2, 4)), train=False)


def test_a_token_mask_over_a_normalized_time_axis_is_refused():
    layer = nn.LayerNorm(axis=(1, 2))
    _, params, state = layer.init(jax.random.PRNGKey(0), (-1, 3, 4))
    x = jnp.ones((2, 3, 4))
    with pytest.raises(ValueError, match=r"mask cannot be applied when axis 1 \(time\) is normalized over"):
        layer.apply(params, state, x, train=False, mask=jnp.ones((2, 3)))
    per_token = nn.LayerNorm()
    _, params, state = per_token.init(jax.random.PRNGKey(0), (-1, 3, 4))
    y, _ = per_token.apply(params, state, x, train=False, mask=jnp.ones((2, 3)))  # per token: the mask is moot
    assert y.shape == x.shape
