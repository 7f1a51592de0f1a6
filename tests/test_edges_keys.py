"""Issue 13, items 8 and 9: every key is checked (legacy and typed keys both work), and
donated buffers: shared inputs run, consumed inputs give a jaxnet error."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet as jn
from jaxnet import data as D
from jaxnet.nn.dropout import dropout_mask

X = jnp.ones((8, 3))
Y = jnp.zeros((8,), jnp.int32)
LOSS = "softmax_cross_entropy_with_integer_labels"

BAD_KEYS = [
    pytest.param(None, "got None", id="None"),
    pytest.param(0, "got the int 0; wrap it", id="int"),
    pytest.param(jnp.ones(2), "got an array of dtype float32", id="float-array"),
    pytest.param(jax.random.split(jax.random.PRNGKey(0), 3), "got a batch of raw keys of shape \\(3, 2\\)", id="batch"),
    pytest.param(jax.random.split(jax.random.key(0), 3), "got a batch of keys of shape \\(3,\\)", id="typed-batch"),
    pytest.param(jnp.zeros((3,), jnp.uint32), "got a raw key of shape \\(3,\\)", id="wrong-shape"),
    pytest.param(2.5, "got the float 2.5; a seed is an int", id="float"),
    pytest.param(
        jax.random.key_data(jax.random.key(0, impl="rbg")),
        "shape \\(2,\\) for the default threefry2x32 implementation.*got a raw key of shape \\(4,\\)",
        id="rbg-words-under-threefry",
    ),
]

CALLS = {
    "Dense.init": (lambda k: jn.Dense(2).init(k, (-1, 3)), r"Dense\(2\)\.init: key must"),
    "Dropout.apply": (lambda k: jn.Dropout(0.5).apply({}, {}, X, key=k, train=True), r"Dropout\(0\.5\)"),
    "fit": (
        lambda k: jn.fit(jn.Dense(2), LOSS, jn.sgd(0.1), (X, Y), epochs=1, batch_size=4, key=k, progress=False),
        r"fit: key must",
    ),
    "fit_ensemble": (
        lambda k: jn.fit_ensemble(
            jn.Dense(2), LOSS, jn.sgd(0.1), (X, Y), members=2, epochs=1, batch_size=4, key=k, progress=False
        ),
        r"fit_ensemble: key must",
    ),
    "shuffle_batches": (lambda k: D.shuffle_batches(k, 8, 4), r"shuffle_batches: key must"),
    "permutation": (lambda k: D.permutation(k, 8), r"permutation: key must"),
    "train_test_split": (lambda k: D.train_test_split(k, X, Y), r"split_indices: key must"),
    "circle": (lambda k: D.circle(k, 10), r"circle: key must"),
    "augment": (lambda k: D.augment.rotate(k, jnp.ones((2, 4, 4))), r"augment: key must"),
    "dropout_mask": (lambda k: dropout_mask(k, 0.5, (2, 2)), r"dropout_mask: key must"),
    "save_checkpoint": (lambda k: jn.save_checkpoint("/nonexistent/x", params={}, key=k), r"save_checkpoint: key"),
}


# key=None is the documented "no key" value of Dropout.apply and save_checkpoint (checked below)
CASES = [
    pytest.param(call, *bad.values, id=f"{call}-{bad.id}")
    for call in sorted(CALLS)
    for bad in BAD_KEYS
    if not (bad.values[0] is None and call in ("Dropout.apply", "save_checkpoint"))
]


@pytest.mark.parametrize("call, bad, words", CASES)
def test_every_key_taking_function_checks_its_key(call, bad, words):
    fn, where = CALLS[call]
    with pytest.raises(TypeError, match=where) as e:
        fn(bad)
    assert e.match(words)


def test_dropout_in_training_without_a_key_is_a_clear_error():
    with pytest.raises(ValueError, match=r"Dropout\(0\.5\)\.apply: train=True needs a random key"):
        jn.Dropout(0.5).apply({}, {}, X, train=True)


def test_train_step_checks_its_key():
    model, opt = jn.Dense(2), jn.sgd(0.1)
    _, p, s = model.init(jax.random.PRNGKey(0), (-1, 3))
    step = jn.make_train_step(model, LOSS, opt, donate=False)
    with pytest.raises(TypeError, match="train step: key must be one key"):
        step(p, s, opt.init(p), (X, Y), jax.random.split(jax.random.PRNGKey(0), 2))


def test_legacy_and_typed_keys_give_the_same_fit():
    def run(key):
        model = jn.serial(jn.Dense(4), jn.Dropout(0.3), jn.Dense(2))
        return jn.fit(model, LOSS, jn.sgd(0.1), (X, Y), epochs=2, batch_size=4, key=key, progress=False)

    a, b = run(jax.random.PRNGKey(3)), run(jax.random.key(3))
    jax.tree_util.tree_map(np.testing.assert_array_equal, a.params, b.params)


@pytest.mark.parametrize("impl", ["threefry2x32", "rbg", "unsafe_rbg"])
def test_typed_key_in_a_checkpoint_loads_back_as_the_same_kind(tmp_path, impl):
    key = jax.random.key(7, impl=impl)
    path = jn.save_checkpoint(tmp_path / "ck", params={"w": jnp.ones(2)}, key=key)
    back = jn.load_checkpoint(path, params={"w": jnp.ones(2)}).key
    assert back.dtype == key.dtype
    np.testing.assert_array_equal(jax.random.key_data(back), jax.random.key_data(key))
    np.testing.assert_array_equal(jax.random.normal(back, (3,)), jax.random.normal(key, (3,)))


def test_legacy_key_in_a_checkpoint_loads_back_raw(tmp_path):
    key = jax.random.PRNGKey(5)
    path = jn.save_checkpoint(tmp_path / "ck", params={"w": jnp.ones(2)}, key=key)
    back = jn.load_checkpoint(path, params={"w": jnp.ones(2)}).key
    assert back.dtype == jnp.uint32
    np.testing.assert_array_equal(back, key)


# --- item 9: donated buffers ---------------------------------------------------------------


def _setup():
    model, opt = jn.Dense(2), jn.sgd(0.1, momentum=0.9)
    _, p, s = model.init(jax.random.PRNGKey(0), (-1, 3))
    return model, opt, p, s


def test_step_with_inputs_sharing_one_array_runs():
    model, opt, p, s = _setup()
    o = opt.init(p)
    tied = o._replace(trace={"w": p["w"], "b": p["b"]})  # the state holds the params' own arrays
    step = jn.make_train_step(model, LOSS, opt)
    ref = jn.make_train_step(model, LOSS, opt, donate=False)(
        jax.tree_util.tree_map(jnp.copy, p), s, jax.tree_util.tree_map(jnp.copy, tied), (X, Y), None
    )
    got = step(p, s, tied, (X, Y), None)
    jax.tree_util.tree_map(np.testing.assert_allclose, got[0], ref[0])


def test_step_with_set_hyperparameter_sharing_one_array_runs():
    model = jn.Dense(2)
    _, p, s = model.init(jax.random.PRNGKey(0), (-1, 3))
    opt = jn.optim.chain(jn.optim.clip_by_value(1.0), jn.optim.clip_by_value(2.0), jn.sgd(0.1))
    o = jn.optim.set_hyperparameter(opt.init(p), "max_delta", jnp.asarray(0.5, jnp.float32))
    assert o.states[0].max_delta is o.states[1].max_delta  # two fields, one array object
    ref = jn.make_train_step(model, LOSS, opt, donate=False)(p, s, o, (X, Y), None)
    got = jn.make_train_step(model, LOSS, opt)(jax.tree_util.tree_map(jnp.copy, p), s, o, (X, Y), None)
    jax.tree_util.tree_map(np.testing.assert_allclose, got[0], ref[0])


def test_calling_a_step_with_consumed_arrays_says_they_were_donated():
    model, opt, p, s = _setup()
    o = opt.init(p)
    step = jn.make_train_step(model, LOSS, opt)
    step(p, s, o, (X, Y), None)
    with pytest.raises(ValueError, match=r"was donated to an earlier call.*rebind.*donate=False"):
        step(p, s, o, (X, Y), None)


def test_parallel_step_with_consumed_arrays_says_they_were_donated():
    from jaxnet.train import make_parallel_train_step

    model, opt, p, s = _setup()
    o = opt.init(p)
    step = make_parallel_train_step(model, LOSS, opt)
    step(p, s, o, (X, Y), None)
    with pytest.raises(ValueError, match=r"parallel train step: an input array was donated to an earlier call"):
        step(p, s, o, (X, Y), None)
