"""State and keys through ``serial``: one key per stochastic layer, running statistics in and out,
one compilation per mode, learned activations beside state, and errors for another model's trees."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet as jn
from jaxnet.nn import BatchNorm, Dropout, dropout_mask, intermediates, losses

KEY = jax.random.PRNGKey(0)


def test_each_dropout_layer_gets_its_own_key_from_its_position():
    model = jn.serial(Dropout(0.5), Dropout(0.5))
    _, params, state = model.init(KEY, (-1, 1000))
    x = jnp.ones((1, 1000))
    k = jax.random.PRNGKey(42)
    _, first, second = intermediates(model, params, state, x, key=k, train=True)
    mask0 = dropout_mask(jax.random.fold_in(k, 0), 0.5, x.shape)
    mask1 = dropout_mask(jax.random.fold_in(k, 1), 0.5, x.shape)
    np.testing.assert_array_equal(first, np.where(mask0, 2.0, 0.0))
    np.testing.assert_array_equal(second, np.where(mask0 & mask1, 4.0, 0.0))
    # The two masks are independent draws: they agree on about half of the units, not all.
    agree = float(jnp.mean(mask0 == mask1))
    assert abs(agree - 0.5) < 5 * np.sqrt(0.25 / 1000)
    y, _ = model.apply(params, state, x, key=k, train=True)
    np.testing.assert_array_equal(y, second)


def test_same_key_same_output_different_key_different_output():
    model = jn.MLP([16, 16, 3], batchnorm=True, dropout=0.3)
    _, params, state = model.init(KEY, (-1, 4))
    x = jax.random.normal(jax.random.PRNGKey(1), (8, 4))
    run = jax.jit(lambda k: model.apply(params, state, x, key=k, train=True))
    y1, s1 = run(jax.random.PRNGKey(3))
    y2, s2 = run(jax.random.PRNGKey(3))
    y3, _ = run(jax.random.PRNGKey(4))
    np.testing.assert_array_equal(y1, y2)
    jax.tree_util.tree_map(np.testing.assert_array_equal, s1, s2)
    assert not np.array_equal(y1, y3)


def test_state_flows_in_and_out_as_one_tree():
    model = jn.MLP([6, 5, 2], batchnorm=True)
    kinds = [layer.kind for layer in model.layers]
    assert kinds == ["dense", "batchnorm", "activation", "dense", "batchnorm", "activation", "dense"]
    _, params, state = model.init(KEY, (-1, 3))
    assert set(state) == set(params) and state["dense_0"] == {}
    assert jax.tree_util.tree_map(jnp.shape, state["batchnorm_4"]) == {"mean": (5,), "var": (5,)}
    x = 3 + jax.random.normal(jax.random.PRNGKey(1), (10, 3))
    _y, new_state = model.apply(params, state, x, train=True)
    assert jax.tree_util.tree_structure(new_state) == jax.tree_util.tree_structure(state)
    # The first BatchNorm's running mean moved a tenth of the way to its input's batch mean.
    h = np.asarray(x) @ np.asarray(params["dense_0"]["w"]) + np.asarray(params["dense_0"]["b"])
    np.testing.assert_allclose(new_state["batchnorm_1"]["mean"], 0.1 * h.mean(0), rtol=1e-5, atol=1e-6)
    _, eval_state = model.apply(params, new_state, x, train=False)
    jax.tree_util.tree_map(np.testing.assert_array_equal, eval_state, new_state)


def test_mlp_options_layout_and_errors():
    model = jn.MLP([4, 4, 2], activation="tanh", batchnorm=True, dropout=0.2)
    assert [layer.kind for layer in model.layers] == [
        "dense",
        "batchnorm",
        "activation",
        "dropout",
        "dense",
        "batchnorm",
        "activation",
        "dropout",
        "dense",
    ]
    assert model.needs_key
    assert not jn.MLP([4, 2], batchnorm=True).needs_key
    with pytest.raises(ValueError, match=r"MLP dropout: Dropout: rate must be <= 1.0, got 1.5"):
        jn.MLP([4, 2], dropout=1.5)
    with pytest.raises(TypeError, match=r"MLP: batchnorm must be a bool, got 'yes'"):
        jn.MLP([4, 2], batchnorm="yes")


def test_missing_key_in_a_model_says_to_pass_one():
    model = jn.MLP([4, 2], dropout=0.5)
    _, params, state = model.init(KEY, (-1, 3))
    with pytest.raises(ValueError, match=r"Dropout\(0.5\).apply: train=True needs a random key.*pass key="):
        model.apply(params, state, jnp.ones((2, 3)), train=True)
    y, _ = model.apply(params, state, jnp.ones((2, 3)), train=False)  # evaluation needs none
    assert y.shape == (2, 2)


def test_one_compilation_per_mode():
    model = jn.MLP([8, 2], batchnorm=True, dropout=0.5)
    _, params, state = model.init(KEY, (-1, 3))
    traces = []

    def forward(params, state, x, key, train):
        traces.append(train)
        return model.apply(params, state, x, key=key, train=train)

    fwd = jax.jit(forward, static_argnames="train")
    x = jax.random.normal(KEY, (16, 3))
    for i in range(3):
        _, state = fwd(params, state, x, jax.random.PRNGKey(i), train=True)
        fwd(params, state, x, None, train=False)
    assert traces == [True, False]


def test_mlp_with_batchnorm_and_dropout_trains_under_jit_and_evaluates_deterministically():
    x, y = jn.data.circle(jax.random.PRNGKey(0), 512)
    model = jn.MLP([32, 32, 2], batchnorm=True, dropout=0.1)
    _, params, state = model.init(jax.random.PRNGKey(1), (-1, 2))
    opt = jn.optim.sgd(0.2)
    opt_state = opt.init(params)
    traces = {"train": 0, "eval": 0}

    def counting_loss(mode):
        def loss(out, y, where=None):
            traces[mode] += 1
            return losses.softmax_cross_entropy_with_integer_labels(out, y, where)

        return loss

    step = jn.make_train_step(model, counting_loss("train"), opt)
    evaluate = jn.make_eval_step(model, counting_loss("eval"), metrics={"accuracy": losses.accuracy})
    before = evaluate(params, state, (x, y))
    for i in range(300):
        params, state, opt_state, _m = step(params, state, opt_state, (x, y), jax.random.PRNGKey(i))
    after = evaluate(params, state, (x, y))
    again = evaluate(params, state, (x, y))
    assert traces == {"train": 1, "eval": 1}
    assert float(after["loss"]) < 0.5 * float(before["loss"])
    assert float(after["accuracy"]) > 0.9
    assert float(after["loss"]) == float(again["loss"])
    # Evaluation of a sample alone equals its row in the full batch: running statistics, no mask.
    full, _ = model.apply(params, state, x, train=False)
    alone, _ = model.apply(params, state, x[:3], train=False)
    np.testing.assert_allclose(alone, full[:3], rtol=1e-5, atol=1e-6)


def test_learned_activation_parameters_train_beside_state():
    model = jn.serial(
        jn.Dense(16), BatchNorm(), jn.PRelu(), Dropout(0.2), jn.Dense(16), jn.Elu(learnable=True), jn.Dense(2)
    )
    x, y = jn.data.circle(jax.random.PRNGKey(2), 128)
    _, params, state = model.init(KEY, (-1, 2))

    def loss(params, state, key):
        out, new_state = model.apply(params, state, x, key=key, train=True)
        return losses.softmax_cross_entropy_with_integer_labels(out, y), new_state

    grads, new_state = jax.jit(jax.grad(loss, has_aux=True))(params, state, jax.random.PRNGKey(3))
    assert float(jnp.abs(grads["prelu_2"]["alpha"])) > 0
    assert float(jnp.abs(grads["elu_5"]["alpha"])) > 0
    assert not np.allclose(new_state["batchnorm_1"]["var"], state["batchnorm_1"]["var"])
    step = jn.make_train_step(model, "softmax_cross_entropy_with_integer_labels", jn.optim.sgd(0.1), donate=False)
    opt_state = jn.optim.sgd(0.1).init(params)
    p1, s1, _, _ = step(params, state, opt_state, (x, y), jax.random.PRNGKey(4))
    assert float(p1["prelu_2"]["alpha"]) != 0.25 and float(p1["elu_5"]["alpha"]) != 1.0
    assert jax.tree_util.tree_structure(s1) == jax.tree_util.tree_structure(state)


def test_state_from_another_model_names_the_mismatched_path():
    small, big = jn.MLP([32, 2], batchnorm=True), jn.MLP([64, 2], batchnorm=True)
    _, _, small_state = small.init(KEY, (-1, 3))
    _, params, state = big.init(KEY, (-1, 3))
    x = jnp.ones((4, 3))
    msg = r"state\['batchnorm_1'\]\['mean'\]: expected shape \(64,\), got \(32,\)"
    with pytest.raises(ValueError, match=msg):
        big.apply(params, small_state, x, train=False)
    with pytest.raises(ValueError, match=msg):
        jax.jit(lambda p, s: big.apply(p, s, x, train=True))(params, small_state)
    # Params of a BatchNorm without gamma and beta.
    _, plain_params, _ = jn.serial(jn.Dense(64), BatchNorm(affine=False), jn.Relu(), jn.Dense(2)).init(KEY, (-1, 3))
    with pytest.raises(ValueError, match=r"params\['batchnorm_1'\]\['beta'\] is missing"):
        big.apply(plain_params, state, x, train=False)
    # Inside a nested serial the path starts at the outer model.
    outer = jn.serial(jn.Dense(3), big)
    _, outer_params, outer_state = outer.init(KEY, (-1, 5))
    outer_state["serial_1"] = small_state
    with pytest.raises(ValueError, match=r"state\['serial_1'\]\['batchnorm_1'\]\['mean'\]: expected shape \(64,\)"):
        outer.apply(outer_params, outer_state, jnp.ones((4, 5)), train=False)
