"""jaxnet's unrolled threefry equals ``jax.random`` bit for bit, and compiles without a loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet import _threefry as T


def _keys():
    """Raw and typed threefry keys, including ones whose words have the top bit set."""
    keys = [jax.random.PRNGKey(s) for s in (0, 1, 42, 2**31 - 1)]
    keys += [jax.random.key(s) for s in (0, 7)]
    keys.append(jnp.array([0xFFFFFFFF, 0x80000001], jnp.uint32))
    return keys


def _same(a, b):
    if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
        assert jnp.issubdtype(b.dtype, jax.dtypes.prng_key) and a.dtype == b.dtype
        a, b = jax.random.key_data(a), jax.random.key_data(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("key", _keys(), ids=lambda k: str(k.dtype))
def test_split_fold_in_and_bits_equal_jax_random(key):
    for num in (1, 2, 3, 5, (2, 3)):
        _same(T.split(key, num), jax.random.split(key, num))
    for data in (0, 1, 7, 2**20, 2**31 - 1, 2**31, 2**32 - 1, np.int32(-1), np.int64(9), np.uint32(2**32 - 1)):
        _same(T.fold_in(key, data), jax.random.fold_in(key, data))
    for shape in ((), (1,), 7, (8194,), (3, 5), (0,)):
        _same(T.bits(key, shape), jax.random.bits(key, shape, jnp.uint32))


@pytest.mark.parametrize("make", [jax.random.PRNGKey, jax.random.key], ids=["raw", "typed"])
def test_equal_under_jit_and_vmap_with_traced_data(make):
    keys = jax.random.split(make(3), 4)
    steps = jnp.arange(4, dtype=jnp.int32) * 1000 + 5
    _same(
        jax.jit(jax.vmap(T.fold_in))(keys, steps),
        jax.vmap(jax.random.fold_in)(keys, steps),
    )
    _same(jax.jit(jax.vmap(lambda k: T.bits(k, (33,))))(keys), jax.vmap(lambda k: jax.random.bits(k, (33,)))(keys))
    _same(jax.jit(jax.vmap(T.split))(keys), jax.vmap(jax.random.split)(keys))


@pytest.mark.parametrize(
    "key",
    [jax.random.key(0, impl="rbg"), jax.random.key(0, impl="unsafe_rbg")],
    ids=["rbg", "unsafe_rbg"],
)
def test_other_keys_go_to_jax_random(key):
    _same(T.split(key), jax.random.split(key))
    _same(T.bits(key, (5,)), jax.random.bits(key, (5,), jnp.uint32))
    _same(T.fold_in(key, 3), jax.random.fold_in(key, 3))


def test_non_partitionable_threefry_goes_to_jax_random():
    key = jax.random.PRNGKey(11)
    partitionable = T.bits(key, (9,)), T.split(key, 3)
    with jax.threefry_partitionable(False):
        bits, keys = T.bits(key, (9,)), T.split(key, 3)
        _same(bits, jax.random.bits(key, (9,), jnp.uint32))
        _same(keys, jax.random.split(key, 3))
        _same(T.fold_in(key, 4), jax.random.fold_in(key, 4))  # fold_in hashes alike in both modes: computed here
    # the modes draw different bits, so the equalities above mean the call was handed to jax.random
    assert not np.array_equal(np.asarray(bits), np.asarray(partitionable[0]))
    assert not np.array_equal(np.asarray(keys), np.asarray(partitionable[1]))


def test_compiles_without_a_loop():
    # jax's CPU lowering of threefry is a loop of 5 iterations (a while loop of small kernels in XLA);
    # the point of this module is that its hash is straight-line code XLA fuses.
    text = jax.jit(lambda k: (T.bits(k, (100,)), T.split(k), T.fold_in(k, 3))).lower(jax.random.PRNGKey(0)).as_text()
    assert "while" not in text
    if jax.default_backend() == "cpu":
        assert "while" in jax.jit(lambda k: jax.random.bits(k, (100,))).lower(jax.random.PRNGKey(0)).as_text()


@pytest.mark.parametrize("key", [jax.random.PRNGKey(5), jax.random.key(5), jax.random.key(5, impl="rbg")], ids=str)
def test_fold_in_host_equals_jax_random(key):
    got = T.fold_in_host(key, 4)
    assert len(got) == 4
    for i, k in enumerate(got):
        _same(k, jax.random.fold_in(key, i))


def test_fold_in_rejects_what_jax_rejects():
    key = jax.random.PRNGKey(0)
    with pytest.raises(OverflowError):  # a negative Python int does not convert to uint32
        T.fold_in(key, -1)
    with pytest.raises(TypeError, match="scalar"):
        T.fold_in(key, jnp.arange(3))


@pytest.mark.parametrize("key", [jax.random.PRNGKey(8), jax.random.key(8), jax.random.key(8, impl="rbg")], ids=str)
def test_bernoulli_equals_jax_random(key):
    for p in (0.0, 1e-8, 0.1, 0.5, 0.8, 1.0 - 0.3, 1.0):
        for shape in ((), (7,), (32, 64), (2, 3, 5)):
            _same(T.bernoulli(key, p, shape), jax.random.bernoulli(key, p, shape))
    keys = jax.random.split(jax.random.PRNGKey(2), 3)
    _same(
        jax.jit(jax.vmap(lambda k: T.bernoulli(k, 0.75, (4, 9))))(keys),
        jax.vmap(lambda k: jax.random.bernoulli(k, 0.75, (4, 9)))(keys),
    )


def test_equal_with_x64_enabled():
    # jax samples a Python-float p in float64 then, and takes int64 data for fold_in: run in a fresh process
    import subprocess
    import sys

    code = """
import jax, jax.numpy as jnp, numpy as np
from jaxnet import _threefry as T
k = jax.random.PRNGKey(4)
assert jax.config.jax_enable_x64
assert np.array_equal(T.bernoulli(k, 0.7, (5, 6)), jax.random.bernoulli(k, 0.7, (5, 6)))
assert np.array_equal(T.fold_in(k, np.int64(2**40 + 3)), jax.random.fold_in(k, np.int64(2**40 + 3)))
assert np.array_equal(T.bits(k, (9,)), jax.random.bits(k, (9,), jnp.uint32))
assert np.array_equal(T.split(k, 3), jax.random.split(k, 3))
print("ok")
"""
    env = {**__import__("os").environ, "JAX_ENABLE_X64": "1", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stdout + out.stderr
