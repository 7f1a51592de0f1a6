"""Embedding: lookup against NumPy indexing, ids of any shape, out-of-range ids, gradients and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet import nn
from jaxnet.autodiff import backprop


@pytest.mark.parametrize("ids_shape", [(4,), (3, 5), (2, 3, 4)])
def test_lookup_matches_numpy_indexing(x64, ids_shape):
    layer = nn.Embedding(11, 6, dtype=jnp.float64)
    out_shape, params, state = layer.init(jax.random.PRNGKey(0), (-1, *ids_shape[1:]))
    assert out_shape == (-1, *ids_shape[1:], 6) and state == {}
    table = params["embedding"]
    assert table.shape == (11, 6) and table.dtype == jnp.float64
    ids = np.random.default_rng(0).integers(0, 11, size=ids_shape)
    y, _ = layer.apply(params, state, jnp.asarray(ids, jnp.int32), train=False)
    assert y.shape == (*ids_shape, 6) and y.dtype == jnp.float64
    np.testing.assert_array_equal(np.asarray(y), np.asarray(table)[ids])


def test_default_init_is_standard_normal():
    _, params, _ = nn.Embedding(1000, 64).init(jax.random.PRNGKey(0), (-1, 3))
    w = np.asarray(params["embedding"])
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1.0) < 0.02


def test_plain_jit_and_vmap_agree():
    layer = nn.Embedding(7, 3)
    _, params, state = layer.init(jax.random.PRNGKey(0), (-1, 4))
    ids = jnp.asarray(np.random.default_rng(1).integers(0, 7, size=(2, 5, 4)), jnp.int32)
    plain = jnp.stack([layer.apply(params, state, i, train=False)[0] for i in ids])
    jitted = jax.jit(lambda i: layer.apply(params, state, i, train=False)[0])
    mapped = jax.vmap(lambda i: layer.apply(params, state, i, train=False)[0])(ids)
    np.testing.assert_array_equal(np.asarray(jnp.stack([jitted(i) for i in ids])), np.asarray(plain))
    np.testing.assert_array_equal(np.asarray(mapped), np.asarray(plain))


@pytest.mark.parametrize("bad", [5, 9, -1])
def test_out_of_range_id_on_concrete_input_is_an_error(bad):
    layer = nn.Embedding(5, 2)
    _, params, state = layer.init(jax.random.PRNGKey(0), (-1, 3))
    ids = jnp.asarray([[0, 1, 2], [3, bad, 4]])
    with pytest.raises(ValueError, match=rf"Embedding\(5, 2\): ids must lie in \[0, 5\), got {bad} at index \(1, 1\)"):
        layer.apply(params, state, ids, train=False)


def test_out_of_range_id_under_jit_gives_nan_rows_never_another_row():
    layer = nn.Embedding(5, 2)
    _, params, state = layer.init(jax.random.PRNGKey(0), (-1, 4))
    ids = jnp.asarray([[0, 5, 4, -1], [7, 3, -6, 1]])
    y = np.asarray(jax.jit(lambda i: layer.apply(params, state, i, train=False)[0])(ids))
    bad = (np.asarray(ids) < 0) | (np.asarray(ids) >= 5)
    assert np.all(np.isnan(y[bad])) and np.all(np.isfinite(y[~bad]))
    np.testing.assert_array_equal(y[~bad], np.asarray(params["embedding"])[np.asarray(ids)[~bad]])


def test_gradient_scatters_into_the_rows_used(x64):
    layer = nn.Embedding(6, 3, dtype=jnp.float64)
    model = nn.serial(layer, nn.Flatten(), nn.Dense(2))
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 4))
    params = jax.tree_util.tree_map(lambda p: p.astype(jnp.float64), params)
    ids = jnp.asarray([[0, 2, 2, 5], [2, 0, 1, 1]])
    y = jnp.asarray(np.random.default_rng(0).normal(size=(2, 2)))

    def loss(p):
        out, _ = model.apply(p, state, ids, train=True)
        return nn.mean_squared_error(out, y)

    auto = jax.grad(loss)(params)["embedding_0"]["embedding"]
    _, hand = backprop(model, params, state, ids, y, "mean_squared_error")
    np.testing.assert_allclose(np.asarray(hand["embedding_0"]["embedding"]), np.asarray(auto), rtol=1e-12, atol=1e-15)
    auto = np.asarray(auto)
    np.testing.assert_array_equal(auto[[3, 4]], 0.0)  # rows no id uses get nothing
    assert np.all(np.abs(auto[[0, 1, 2, 5]]).sum(axis=1) > 0)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bool_])
def test_non_integer_ids_are_a_type_error(dtype):
    layer = nn.Embedding(5, 2)
    _, params, state = layer.init(jax.random.PRNGKey(0), (-1, 3))
    with pytest.raises(
        TypeError, match=r"Embedding\(5, 2\) expected integer ids.*got an input of dtype (float32|bool)"
    ):
        layer.apply(params, state, jnp.zeros((2, 3), dtype), train=False)


@pytest.mark.parametrize(
    "args, error, words",
    [
        ((0, 3), ValueError, r"Embedding: num_embeddings must be a positive int, got 0"),
        ((5, -2), ValueError, r"Embedding: features must be a positive int, got -2"),
        ((5.0, 2), TypeError, r"Embedding: num_embeddings must be an int, got float 5.0"),
        ((5, "2"), TypeError, r"Embedding: features must be a positive int"),
    ],
)
def test_bad_sizes(args, error, words):
    with pytest.raises(error, match=words):
        nn.Embedding(*args)


def test_a_table_of_the_wrong_shape_is_named():
    layer = nn.Embedding(5, 2)
    with pytest.raises(ValueError, match=r"params\['embedding'\] must have shape \(5, 2\), got \(4, 2\)"):
        layer.apply({"embedding": jnp.zeros((4, 2))}, {}, jnp.zeros((1, 3), jnp.int32), train=False)


def test_fit_stops_on_an_out_of_range_id_instead_of_training_on_another_row():
    from jaxnet import optim, train

    rng = np.random.default_rng(0)
    ids = rng.integers(0, 10, size=(64, 3)).astype(np.int32)
    ids[37, 1] = 10  # one bad id, only seen inside the compiled epoch
    labels = rng.integers(0, 2, size=64)
    model = nn.serial(nn.Embedding(10, 4), nn.Flatten(), nn.Dense(2))
    with pytest.warns(Warning, match=r"fit: non-finite loss or parameters"):
        result = train.fit(
            model,
            "softmax_cross_entropy_with_integer_labels",
            optim.sgd(0.1),
            (jnp.asarray(ids), jnp.asarray(labels)),
            epochs=2,
            batch_size=16,
            key=jax.random.PRNGKey(0),
            progress=False,
        )
    assert result.history.stop_reason == "nonfinite"
    assert all(np.all(np.isfinite(np.asarray(p))) for p in jax.tree_util.tree_leaves(result.params))
