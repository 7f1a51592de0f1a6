"""Reshape and the branching combinators: shapes, values, keys, state and mask flow, and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet import nn
from jaxnet.nn.core import make_layer

K = jax.random.PRNGKey(0)


def _recorder(seen):
    def apply(params, state, x, *, key, train, mask):
        seen.append(mask)
        return x, state

    return make_layer("Rec()", lambda k, s: (s, {}, {}), apply, kind="custom", uses_mask=True)


# --- Reshape --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "in_shape, target, out",
    [((-1, 12), (3, 4), (-1, 3, 4)), ((-1, 12), (2, -1), (-1, 2, 6)), ((-1, 2, 3, 2), (-1,), (-1, 12))],
)
def test_reshape_keeps_the_batch_and_infers_minus_one(in_shape, target, out):
    layer = nn.Reshape(target)
    shape, params, state = layer.init(K, in_shape)
    assert shape == out and params == {} and state == {}
    x = jnp.arange(5 * 12.0).reshape((5, *in_shape[1:]))
    y, _ = layer.apply(params, state, x, train=False)
    assert y.shape == (5, *out[1:])
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x).reshape((5, *out[1:])))


@pytest.mark.parametrize(
    "target, error, words",
    [
        ((-1, -1), ValueError, r"Reshape: shape must hold positive sizes and at most one -1, got \(-1, -1\)"),
        ((0, 3), ValueError, r"at most one -1, got \(0, 3\)"),
        (12, TypeError, r"Reshape: shape must be a tuple of ints \(without the batch axis\), got 12"),
        ((2.0, 6), TypeError, r"Reshape: shape must be a tuple of ints"),
    ],
)
def test_reshape_bad_shapes(target, error, words):
    with pytest.raises(error, match=words):
        nn.Reshape(target)


def test_reshape_that_does_not_fit_is_named():
    with pytest.raises(ValueError, match=r"Reshape\(\(5, -1\)\)\.init: cannot reshape samples of shape \(12,\)"):
        nn.Reshape((5, -1)).init(K, (-1, 12))
    with pytest.raises(ValueError, match=r"to \(5, 2\) \(10 values\)"):
        nn.Reshape((5, 2)).apply({}, {}, jnp.ones((3, 12)), train=False)


# --- FanOut, parallel, FanInSum, FanInConcat --------------------------------------------------


def test_fanout_parallel_fanin_sum_is_a_residual_block():
    block = nn.serial(nn.Dense(4), nn.Tanh(), nn.Dense(4))
    by_hand = nn.serial(nn.FanOut(2), nn.parallel(block, nn.Identity()), nn.FanInSum())
    res = nn.residual(block)
    shape, params, state = by_hand.init(K, (-1, 4))
    assert shape == (-1, 4)
    assert set(params["parallel_1"]) == {"serial_0", "identity_1"}
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 4))
    y, _ = by_hand.apply(params, state, x, train=False)
    z, _ = res.apply(
        {"serial_0": params["parallel_1"]["serial_0"]}, {"serial_0": state["parallel_1"]["serial_0"]}, x, train=False
    )
    block_y, _ = block.apply(params["parallel_1"]["serial_0"], state["parallel_1"]["serial_0"], x, train=False)
    np.testing.assert_allclose(np.asarray(y), np.asarray(x + block_y), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(z), np.asarray(y), rtol=1e-6)


def test_fanout_shapes_and_values():
    shape, _, _ = nn.FanOut(3).init(K, (-1, 5))
    assert shape == ((-1, 5),) * 3
    x = jnp.ones((2, 5))
    ys, _ = nn.FanOut(3).apply({}, {}, x, train=False)
    assert isinstance(ys, tuple) and len(ys) == 3 and all(y is x for y in ys)


@pytest.mark.parametrize("axis, out", [(-1, (-1, 3, 9)), (1, (-1, 5, 4)), (-2, (-1, 5, 4))])
def test_fanin_concat_along_an_axis(axis, out):
    if axis == -1:
        shapes, xs = ((-1, 3, 4), (-1, 3, 5)), (np.ones((2, 3, 4)), 2 * np.ones((2, 3, 5)))
    else:
        shapes, xs = ((-1, 3, 4), (-1, 2, 4)), (np.ones((2, 3, 4)), 2 * np.ones((2, 2, 4)))
    layer = nn.FanInConcat(axis)
    shape, _, _ = layer.init(K, shapes)
    assert shape == out
    y, _ = layer.apply({}, {}, tuple(map(jnp.asarray, xs)), train=False)
    np.testing.assert_array_equal(np.asarray(y), np.concatenate(xs, axis=axis))


def test_parallel_runs_one_layer_per_branch_and_keys_params_by_name():
    model = nn.parallel(nn.Dense(2, name="left"), nn.serial(nn.Dense(3), nn.Relu()))
    shape, params, state = model.init(K, ((-1, 4), (-1, 5, 6)))
    assert shape == ((-1, 2), (-1, 5, 3))
    assert set(params) == {"left", "serial_1"}
    a, b = jnp.ones((2, 4)), jnp.ones((2, 5, 6))
    (ya, yb), new_state = model.apply(params, state, (a, b), train=False)
    np.testing.assert_allclose(np.asarray(ya), np.asarray(a @ params["left"]["w"] + params["left"]["b"]), rtol=1e-6)
    assert yb.shape == (2, 5, 3) and set(new_state) == {"left", "serial_1"}


def test_keys_reach_each_branch_as_fold_in_of_its_position():
    model = nn.parallel(nn.Dropout(0.5), nn.Relu(), nn.Dropout(0.5))
    _, params, state = model.init(K, ((-1, 64),) * 3)
    x = jnp.ones((4, 64))
    key = jax.random.PRNGKey(7)
    ys, _ = model.apply(params, state, (x, x, x), key=key, train=True)
    for i in (0, 2):
        want, _ = nn.Dropout(0.5).apply({}, {}, x, key=jax.random.fold_in(key, i), train=True)
        np.testing.assert_array_equal(np.asarray(ys[i]), np.asarray(want))
    assert not np.array_equal(np.asarray(ys[0]), np.asarray(ys[2]))  # never the same mask twice
    res = nn.residual(nn.Dropout(0.5))
    y, _ = res.apply({"dropout_0": {}}, {"dropout_0": {}}, x, key=key, train=True)
    want, _ = nn.Dropout(0.5).apply({}, {}, x, key=jax.random.fold_in(key, 0), train=True)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x + want))
    assert model.needs_key and res.needs_key and not nn.parallel(nn.Relu()).needs_key


def test_state_flows_through_parallel_and_residual():
    model = nn.serial(
        nn.residual(nn.serial(nn.Dense(3), nn.BatchNorm())), nn.FanOut(2), nn.parallel(nn.BatchNorm(), nn.Relu())
    )
    _, params, state = model.init(K, (-1, 3))
    x = jax.random.normal(jax.random.PRNGKey(1), (8, 3))
    _, new = model.apply(params, state, x, train=True)
    inner = new["residual_0"]["serial_0"]["batchnorm_1"]
    assert not np.allclose(np.asarray(inner["mean"]), 0.0)
    assert not np.allclose(np.asarray(new["parallel_2"]["batchnorm_0"]["mean"]), 0.0)
    _, same = model.apply(params, new, x, train=False)
    unchanged = jax.tree_util.tree_all(jax.tree_util.tree_map(lambda a, b: bool(jnp.all(a == b)), same, new))
    assert unchanged  # evaluation leaves the state alone


def test_mask_reaches_layers_inside_parallel_and_residual():
    seen = []
    model = nn.serial(
        nn.residual(_recorder(seen)), nn.FanOut(2), nn.parallel(_recorder(seen), nn.Relu()), nn.FanInSum()
    )
    _, params, state = model.init(K, (-1, 2))
    mask = jnp.array([True, False, True])
    model.apply(params, state, jnp.ones((3, 2)), train=False, mask=mask)
    assert len(seen) == 2 and all(np.array_equal(np.asarray(m), np.asarray(mask)) for m in seen)


def test_a_branched_model_agrees_plain_jit_and_vmap():
    model = nn.serial(
        nn.Dense(6),
        nn.FanOut(2),
        nn.parallel(nn.serial(nn.Dense(6), nn.Gelu()), nn.LayerNorm()),
        nn.FanInConcat(),
        nn.residual(nn.serial(nn.Dense(12), nn.Silu())),
        nn.Reshape((3, 4)),
        nn.FanOut(2),
        nn.FanInSum(),
    )
    shape, params, state = model.init(K, (-1, 5))
    xs = jax.random.normal(jax.random.PRNGKey(1), (2, 4, 5))
    plain = jnp.stack([model.apply(params, state, x, train=False)[0] for x in xs])
    assert plain.shape == (2, 4, 3, 4) and shape == (-1, 3, 4)
    jitted = jax.jit(lambda x: model.apply(params, state, x, train=False)[0])
    mapped = jax.vmap(lambda x: model.apply(params, state, x, train=False)[0])(xs)
    np.testing.assert_allclose(np.asarray(jnp.stack([jitted(x) for x in xs])), np.asarray(plain), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(mapped), np.asarray(plain), rtol=1e-5, atol=1e-6)


# --- errors --------------------------------------------------------------------------------


def test_fanin_sum_of_different_shapes_is_an_error_at_init_and_apply():
    model = nn.serial(nn.FanOut(2), nn.parallel(nn.Dense(3), nn.Dense(4)), nn.FanInSum())
    with pytest.raises(
        ValueError, match=r"layer 2 \(FanInSum\(\)\).*expected branches of one shape, got \(batch, 3\), \(batch, 4\)"
    ):
        model.init(K, (-1, 2))
    with pytest.raises(ValueError, match=r"FanInSum\(\) expected branches of one shape, got \(2, 3\), \(2, 1\)"):
        nn.FanInSum().apply({}, {}, (jnp.ones((2, 3)), jnp.ones((2, 1))), train=False)


def test_residual_around_a_shape_changing_block_is_an_error_at_init():
    with pytest.raises(
        ValueError,
        match=r"residual\(Dense\(3\)\): the block must keep the shape of its input.*maps \(batch, 4\) to \(batch, 3\)",
    ):
        nn.residual(nn.Dense(3)).init(K, (-1, 4))
    layer = nn.residual(nn.Flatten())
    with pytest.raises(ValueError, match=r"maps \(batch, 2, 2\) to \(batch, 4\)"):
        layer.init(K, (-1, 2, 2))


def test_parallel_with_a_wrong_length_tuple():
    model = nn.parallel(nn.Dense(2), nn.Dense(2))
    with pytest.raises(
        ValueError, match=r"parallel\(2 layers\)\.init expected a tuple of 2 branches as input_shape.*got 3"
    ):
        model.init(K, ((-1, 3),) * 3)
    _, params, state = model.init(K, ((-1, 3),) * 2)
    with pytest.raises(
        ValueError, match=r"parallel\(2 layers\) expected a tuple of 2 branches as input, one per layer, got 1"
    ):
        model.apply(params, state, (jnp.ones((1, 3)),), train=False)
    with pytest.raises(
        TypeError, match=r"parallel\(2 layers\)\.init expected a tuple of branch shapes .*got one shape \(-1, 3\)"
    ):
        model.init(K, (-1, 3))
    with pytest.raises(
        TypeError, match=r"expected a tuple of branches as input \(e.g. from FanOut\), got one of shape \(1, 3\)"
    ):
        model.apply(params, state, jnp.ones((1, 3)), train=False)


def test_a_branch_error_names_the_branch():
    with pytest.raises(ValueError, match=r"parallel\(2 layers\), branch 1 \(BatchNorm\(axis=3\)\)"):
        nn.parallel(nn.Relu(), nn.BatchNorm(axis=3)).init(K, ((-1, 2), (-1, 2)))


@pytest.mark.parametrize(
    "make, shapes, words",
    [
        (lambda: nn.FanInConcat(0), ((-1, 2), (-1, 2)), r"axis=0 must name a non-batch axis"),
        (lambda: nn.FanInConcat(2), ((-1, 2), (-1, 2)), r"axis=2 must name a non-batch axis of inputs with 2 axes"),
        (lambda: nn.FanInConcat(), ((-1, 2, 3), (-1, 3, 3)), r"expected branches that differ only on axis -1"),
        (lambda: nn.FanInConcat(), ((-1, 2, 3), (-1, 3)), r"expected branches of one rank"),
        (lambda: nn.FanInSum(), (-1, 3), r"FanInSum\(\)\.init expected a tuple of branch shapes"),
    ],
)
def test_fanin_bad_shapes(make, shapes, words):
    with pytest.raises((ValueError, TypeError), match=words):
        make().init(K, shapes)


@pytest.mark.parametrize(
    "make, error, words",
    [
        (lambda: nn.parallel(), ValueError, r"parallel\(\) needs at least one layer"),
        (
            lambda: nn.parallel(nn.Relu),
            TypeError,
            r"parallel\(\): argument 0 must be a Layer.*Relu\(\) rather than Relu",
        ),
        (lambda: nn.residual("dense"), TypeError, r"residual\(\): argument 0 must be a Layer"),
        (lambda: nn.FanOut(0), ValueError, r"FanOut: n must be a positive int, got 0"),
        (lambda: nn.FanInConcat(axis="last"), TypeError, r"FanInConcat: axis must be an int"),
    ],
)
def test_bad_constructor_arguments(make, error, words):
    with pytest.raises(error, match=words):
        make()
