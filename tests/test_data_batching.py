"""§4.3.4 mini-batching: shuffled epochs laid out as [steps, batch, ...] for lax.scan."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet.data as D


@pytest.mark.parametrize("n,b", [(10, 3), (12, 4), (7, 7)])
def test_drop_last_full_batches_each_sample_at_most_once(n, b):
    idx, mask = D.shuffle_batches(jax.random.PRNGKey(1), n, b)
    assert idx.shape == mask.shape == (n // b, b)
    assert idx.dtype == jnp.int32 and mask.dtype == jnp.bool_
    assert bool(jnp.all(mask))
    flat = np.asarray(idx).ravel()
    assert len(set(flat.tolist())) == flat.size  # no repeats
    assert flat.min() >= 0 and flat.max() < n


@pytest.mark.parametrize("n,b", [(10, 3), (12, 4), (5, 8)])
def test_keep_last_every_sample_exactly_once(n, b):
    idx, mask = D.shuffle_batches(jax.random.PRNGKey(2), n, b, drop_last=False)
    steps = -(-n // b)
    assert idx.shape == (steps, b)
    real = np.asarray(idx)[np.asarray(mask)]
    np.testing.assert_array_equal(np.sort(real), np.arange(n))  # each sample exactly once
    assert int(mask.sum()) == n
    assert np.all(np.asarray(idx)[~np.asarray(mask)] == 0)  # padding is a valid index
    assert not bool(jnp.any(mask[:-1] == False))  # only the last batch is padded  # noqa: E712


def test_a_new_key_gives_a_new_order_and_the_same_key_the_same():
    a, _ = D.shuffle_batches(jax.random.PRNGKey(0), 100, 10)
    b, _ = D.shuffle_batches(jax.random.PRNGKey(0), 100, 10)
    c, _ = D.shuffle_batches(jax.random.PRNGKey(1), 100, 10)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_shuffle_is_uniform_over_positions():
    """Over many epochs, sample 0 lands in each of the 4 batches about equally often."""
    keys = jax.random.split(jax.random.PRNGKey(3), 2000)
    idx, _ = jax.vmap(lambda k: D.shuffle_batches(k, 8, 2))(keys)
    batch_of_zero = np.argmax(np.any(np.asarray(idx) == 0, axis=2), axis=1)
    counts = np.bincount(batch_of_zero, minlength=4)
    # Binomial(2000, 1/4): sd ~ 19.4; 5 sd bound.
    assert np.all(np.abs(counts - 500) < 5 * np.sqrt(2000 * 0.25 * 0.75)), counts


@pytest.mark.parametrize("n", [1, 2, 3, 10, 4096, 4097, 60000, 2**20, 2**20 + 1])
def test_permutation_is_a_permutation_reproducible_per_key(n):
    # 2**20 + 1 needs 21 position bits: it takes jax.random.permutation's path
    perm = jax.jit(lambda k: D.permutation(k, n))(jax.random.PRNGKey(7))
    assert perm.dtype == jnp.int32 and perm.shape == (n,)
    np.testing.assert_array_equal(np.sort(np.asarray(perm)), np.arange(n))
    np.testing.assert_array_equal(perm, D.permutation(jax.random.PRNGKey(7), n))  # jit or not, bit for bit
    if n >= 10:
        assert not np.array_equal(np.asarray(perm), np.asarray(D.permutation(jax.random.PRNGKey(8), n)))


def test_permutation_is_uniform_over_all_orders():
    """n = 4: each of the 24 orders about equally often (chi-square over 24,000 draws)."""
    keys = jax.random.split(jax.random.PRNGKey(11), 24000)
    perms = np.asarray(jax.vmap(lambda k: D.permutation(k, 4))(keys))
    codes = perms @ np.array([64, 16, 4, 1])  # one number per order
    counts = np.unique(codes, return_counts=True)[1]
    assert len(counts) == 24
    chi2 = float(np.sum((counts - 1000.0) ** 2 / 1000.0))
    # 23 degrees of freedom: mean 23, sd 6.8; 64 is about p = 1e-5
    assert chi2 < 64, (chi2, counts)


def test_permutation_redraws_tied_keys_and_stays_exactly_uniform():
    """With 3-bit keys, 4 elements draw distinct keys only 41 % of the time: every tie forces a redraw.

    A tie broken by position would favour the identity's orders; the redraw leaves all 24 equally likely.
    """
    from jaxnet.data.batching import _permutation_by_rank

    keys = jax.random.split(jax.random.PRNGKey(13), 24000)
    perms = np.asarray(jax.vmap(lambda k: _permutation_by_rank(k, 4, bits=3))(keys))
    np.testing.assert_array_equal(np.sort(perms, axis=1), np.tile(np.arange(4), (24000, 1)))
    counts = np.unique(perms @ np.array([64, 16, 4, 1]), return_counts=True)[1]
    assert len(counts) == 24
    chi2 = float(np.sum((counts - 1000.0) ** 2 / 1000.0))
    assert chi2 < 64, (chi2, counts)  # 23 degrees of freedom, about p = 1e-5
    # 2-bit keys for 4 elements: all four values must come up (9 % a draw); the same key, the same order
    one = jax.jit(lambda k: _permutation_by_rank(k, 4, bits=2))
    np.testing.assert_array_equal(one(jax.random.PRNGKey(5)), one(jax.random.PRNGKey(5)))
    assert sorted(np.asarray(one(jax.random.PRNGKey(5))).tolist()) == [0, 1, 2, 3]


@pytest.mark.parametrize("make_key", [jax.random.PRNGKey, jax.random.key, lambda s: jax.random.key(s, impl="rbg")])
def test_permutation_takes_every_kind_of_key(make_key):
    perm = D.permutation(make_key(3), 1000)
    np.testing.assert_array_equal(np.sort(np.asarray(perm)), np.arange(1000))
    np.testing.assert_array_equal(perm, jax.jit(lambda k: D.permutation(k, 1000))(make_key(3)))


def test_permutation_with_several_rounds_is_uniform_over_positions():
    """The rounds (the method above n = 2**15), at n = 300: two packed sorts.

    Element 0 lands in each tenth of the order about equally often.
    """
    from jaxnet.data.batching import _permutation_by_rounds

    keys = jax.random.split(jax.random.PRNGKey(12), 10000)
    perms = np.asarray(jax.vmap(lambda k: _permutation_by_rounds(k, 300))(keys))
    where_zero = np.argmax(perms == 0, axis=1)
    counts = np.bincount(where_zero // 30, minlength=10)
    chi2 = float(np.sum((counts - 1000.0) ** 2 / 1000.0))
    assert chi2 < 40, (chi2, counts)  # 9 degrees of freedom: mean 9, sd 4.2; 40 is about p = 1e-5
    # and the original order leaves no trace: 0 before 1 half of the time (sd 0.005)
    before = np.mean(where_zero < np.argmax(perms == 1, axis=1))
    assert abs(before - 0.5) < 0.025, before


def test_permutation_rejects_bad_n():
    for bad in (0, -3):
        with pytest.raises(ValueError, match="permutation: n must be a positive int"):
            D.permutation(jax.random.PRNGKey(0), bad)
    for bad in (2.0, True, "4"):
        with pytest.raises(TypeError, match="permutation: n must be a positive int"):
            D.permutation(jax.random.PRNGKey(0), bad)
    # a NumPy int is an int: the same permutation as the Python int
    np.testing.assert_array_equal(
        D.permutation(jax.random.PRNGKey(0), np.int64(5)), D.permutation(jax.random.PRNGKey(0), 5)
    )
    idx, _ = D.shuffle_batches(jax.random.PRNGKey(0), np.int32(10), np.int64(5))
    assert idx.shape == (2, 5)
    with pytest.raises(TypeError, match="epoch_batches: key must"):
        D.epoch_batches(0, (jnp.ones((4, 2)),), 2)


def test_jit_with_static_sizes_traces_once():
    traces = []

    def f(key):
        traces.append(1)
        return D.shuffle_batches(key, 50, 8, drop_last=False)

    g = jax.jit(f)
    for i in range(3):
        g(jax.random.PRNGKey(i))
    assert len(traces) == 1


def test_epoch_batches_keeps_pairs_aligned_and_scans():
    n, b = 23, 5
    x = jnp.arange(n, dtype=jnp.float32)[:, None] * jnp.ones((1, 3))
    y = jnp.arange(n, dtype=jnp.int32)
    (xb, yb), mask = D.epoch_batches(jax.random.PRNGKey(4), (x, y), b, drop_last=False)
    assert xb.shape == (5, b, 3) and yb.shape == (5, b) and mask.shape == (5, b)
    np.testing.assert_array_equal(xb[..., 0], yb.astype(jnp.float32))

    def body(total, batch):
        (_xi, yi), mi = batch
        return total + jnp.sum(jnp.where(mi, yi, 0)), None

    total, _ = jax.lax.scan(body, 0, ((xb, yb), mask))
    assert int(total) == sum(range(n))  # every sample counted exactly once


def test_epoch_batches_accepts_dicts():
    data = {"x": jnp.ones((8, 2)), "w": jnp.arange(8.0)}
    out, _mask = D.epoch_batches(jax.random.PRNGKey(0), data, 4)
    assert out["x"].shape == (2, 4, 2) and out["w"].shape == (2, 4)


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match=r"batch_size must be > 0, got batch_size=0 \(n=10\)"):
        D.shuffle_batches(jax.random.PRNGKey(0), 10, 0)
    with pytest.raises(ValueError, match=r"batch_size=11 is larger than the data \(n=10\)"):
        D.shuffle_batches(jax.random.PRNGKey(0), 10, 11)
    idx, mask = D.shuffle_batches(jax.random.PRNGKey(0), 10, 11, drop_last=False)  # allowed: one padded batch
    assert idx.shape == (1, 11) and int(mask.sum()) == 10
    with pytest.raises(TypeError, match="static int"):
        D.shuffle_batches(jax.random.PRNGKey(0), 10, 2.5)
    with pytest.raises(ValueError, match="same leading"):
        D.epoch_batches(jax.random.PRNGKey(0), (jnp.ones(4), jnp.ones(5)), 2)


def test_eager_shuffles_compile_once_per_setting():
    # Called outside jit, the shuffle is one compiled program per (n, batch_size, drop_last, key kind):
    # its redraw loop used to be traced, and compiled, again on every call (~0.2 s each).
    from jax import monitoring

    compiles = []

    def listen(event, secs, **kw):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    x, y = jnp.ones((50, 3)), jnp.arange(50)
    keys = [jax.random.PRNGKey(i) for i in range(5)]
    for i in range(2):  # the first round compiles
        D.permutation(keys[i], 50)
        D.shuffle_batches(keys[i], 50, 8, drop_last=False)
        D.epoch_batches(keys[i], (x, y), 8)
    monitoring.register_event_duration_secs_listener(listen)
    try:
        for i in range(2, 5):
            p = D.permutation(keys[i], 50)
            idx, mask = D.shuffle_batches(keys[i], 50, 8, drop_last=False)
            (xb, yb), m = D.epoch_batches(keys[i], (x, y), 8)
            assert yb.shape == (6, 8) and m.shape == (6, 8)
    finally:
        monitoring.unregister_event_duration_listener(listen)
    assert compiles == []
    assert sorted(np.asarray(p).tolist()) == list(range(50))
    assert idx.shape == mask.shape == (7, 8) and xb.shape == (6, 8, 3)
