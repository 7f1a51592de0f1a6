"""Issue 13, items 4, 5 and 11: EarlyStopping's direction, params/state/optimizer state of
another model or optimizer, and an input mismatch blamed on the input first."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet as jn
from jaxnet import optim
from jaxnet.nn.core import ParamsMismatchError
from jaxnet.train.history import EarlyStopping, infer_mode

KEY = jax.random.PRNGKey(0)


# --- item 4: EarlyStopping mode -----------------------------------------------------------


@pytest.mark.parametrize("monitor", ["val_loss", "loss", "val_mse", "val_mae", "val_error", "val_rmse", "val_nll"])
def test_error_like_monitors_are_minimised(monitor):
    assert EarlyStopping(monitor=monitor).minimize


@pytest.mark.parametrize("monitor", ["val_accuracy", "accuracy", "val_acc", "val_auc", "val_f1"])
def test_score_monitors_are_maximised(monitor):
    assert not EarlyStopping(monitor=monitor).minimize


@pytest.mark.parametrize("monitor", ["val_score", "val_r2", "val_margin"])
def test_unknown_monitor_asks_for_mode(monitor):
    with pytest.raises(ValueError, match=r"give mode='min'.*or mode='max'"):
        EarlyStopping(monitor=monitor)
    assert EarlyStopping(monitor=monitor, mode="max").minimize is False
    assert EarlyStopping(monitor=monitor, mode="min").minimize is True
    assert infer_mode(monitor) is None


def test_restore_best_on_val_mse_restores_the_lowest_epoch():
    # a regression whose val_mse first falls, then rises (learning rate far too high later
    # would be needed for that; instead compare with the recorded history): the restored
    # epoch is the arg-min of val_mse, not the arg-max.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]], np.float32) + 0.3 * rng.normal(size=(64, 1))).astype(np.float32)
    xv, yv = x[:16] + 0.1, y[:16]
    mse = {"mse": jn.nn.losses.mean_squared_error}
    stop = EarlyStopping(monitor="val_mse", patience=3)
    r = jn.fit(
        jn.MLP([16, 1]),
        "squared_error",
        jn.sgd(0.05),
        (x, y),
        epochs=12,
        batch_size=16,
        key=KEY,
        validation=(xv, yv),
        metrics=mse,
        early_stopping=stop,
        progress=False,
    )
    col = r.history["val_mse"]
    assert r.history.best_epoch == int(np.argmin(col)) + 1


# --- item 5: params and state of another model --------------------------------------------


def test_mlp_with_params_of_a_wider_mlp_names_the_path():
    _, p5, s5 = jn.MLP([8, 5]).init(KEY, (-1, 4))
    with pytest.raises(ParamsMismatchError, match=r"params\['dense_2'\]\['w'\]: expected shape \(8, 3\), got \(8, 5\)"):
        jn.MLP([8, 3]).apply(p5, s5, jnp.ones((2, 4)), train=False)


def test_dense_with_a_wider_kernel_raises():
    with pytest.raises(
        ParamsMismatchError, match=r"Dense\(3\): .*params\['w'\]: expected shape \(4, 3\), got \(4, 5\)"
    ):
        jn.Dense(3).apply({"w": jnp.ones((4, 5)), "b": jnp.ones(5)}, {}, jnp.ones((2, 4)), train=False)


def test_params_mismatch_is_caught_under_jit_and_in_fit():
    model = jn.MLP([8, 3])
    _, p5, s5 = jn.MLP([8, 5]).init(KEY, (-1, 4))
    with pytest.raises(ValueError, match=r"params\['dense_2'\]"):
        jax.jit(lambda p: model.apply(p, s5, jnp.ones((2, 4)), train=False))(p5)
    x, y = jnp.ones((8, 4)), jnp.zeros((8,), jnp.int32)
    opt = jn.sgd(0.1)
    with pytest.raises(ValueError, match=r"params\['dense_2'\]\['w'\]: expected shape \(8, 3\), got \(8, 5\)"):
        jn.fit(
            model,
            "softmax_cross_entropy_with_integer_labels",
            opt,
            (x, y),
            epochs=1,
            batch_size=4,
            key=KEY,
            init=(p5, s5, opt.init(p5)),
            progress=False,
        )


def test_missing_and_extra_params_are_named():
    _, p, s = jn.MLP([8, 3]).init(KEY, (-1, 4))
    del p["dense_2"]["b"]
    with pytest.raises(ValueError, match=r"params\['dense_2'\]\['b'\] is missing"):
        jn.MLP([8, 3]).apply(p, s, jnp.ones((2, 4)), train=False)
    with pytest.raises(ValueError, match=r"params\['extra'\] is not a parameter"):
        jn.Dense(3).apply({"w": jnp.ones((4, 3)), "b": jnp.ones(3), "extra": 1.0}, {}, jnp.ones((2, 4)), train=False)


def test_batchnorm_state_of_another_width_is_named():
    bn = jn.serial(jn.Dense(4), jn.BatchNorm())
    _, p, s = bn.init(KEY, (-1, 3))
    s["batchnorm_1"]["mean"] = jnp.zeros(5)
    with pytest.raises(ValueError, match=r"state\['batchnorm_1'\]\['mean'\]: expected shape \(4,\), got \(5,\)"):
        bn.apply(p, s, jnp.ones((2, 3)), train=False)


# --- item 5: optimizer state of another optimizer or model ---------------------------------

P = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}


@pytest.mark.parametrize(
    "opt, state, error, words",
    [
        (optim.sgd(0.1), optim.adam(1e-3).init(P), TypeError, r"sgd.update: got the state of another optimizer \(Adam"),
        (optim.adam(1e-3), optim.sgd(0.1).init(P), TypeError, r"adam.update: got the state of another optimizer"),
        (optim.rmsprop(1e-3), None, TypeError, r"rmsprop.update: opt_state is None"),
        (optim.adagrad(0.1), None, TypeError, r"adagrad.update: opt_state is None"),
        (optim.sgd(0.1), optim.sgd(0.1, momentum=0.9).init(P), ValueError, r"sgd.update: .*built with other options"),
        (
            optim.adam(1e-3),
            optim.adam(1e-3).init({"w": jnp.ones((2, 5)), "b": jnp.zeros(3)}),
            ValueError,
            r"adam.update: opt_state.mu\['w'\] has shape \(2, 5\), its gradient \(2, 3\)",
        ),
        (
            optim.sgd(0.1, momentum=0.9),
            optim.sgd(0.1, momentum=0.9).init({"w": jnp.ones((2, 3))}),
            ValueError,
            r"sgd.update: opt_state.trace has the structure",
        ),
        (optim.adamw(1e-3), optim.adam(1e-3).init(P), ValueError, r"adamw.update: the state stores hyperparameters"),
        (
            optim.chain(optim.clip_by_global_norm(1.0), optim.sgd(0.1)),
            optim.sgd(0.1).init(P),
            TypeError,
            r"chain.update: expected the ChainState of 2 transforms",
        ),
    ],
)
def test_optimizer_given_a_foreign_state_raises(opt, state, error, words):
    with pytest.raises(error, match=words):
        opt.update(P, state, P)


def test_sgd_with_adam_state_does_not_step_silently_under_jit():
    with pytest.raises(TypeError, match="state of another optimizer"):
        jax.jit(optim.sgd(0.1).update)(P, optim.adam(1e-3).init(P))


@pytest.mark.parametrize("make", [optim.sgd, optim.adam, optim.rmsprop, optim.adagrad])
def test_integer_params_with_a_float_optimizer_raise(make):
    with pytest.raises(TypeError, match=r"params\['n'\] has dtype int32; an optimizer needs floating-point"):
        make(0.1).init({"w": jnp.ones(2), "n": jnp.ones(2, jnp.int32)})


# --- item 11: the input is blamed first ---------------------------------------------------


def test_wrong_feature_count_blames_the_input():
    _, p, s = jn.Dense(8).init(KEY, (-1, 4))
    with pytest.raises(ValueError, match=r"^Dense\(8\) expected input with last dimension 4, got \(64, 3\)"):
        jn.Dense(8).apply(p, s, jnp.ones((64, 3)), train=False)


def test_wrong_feature_count_in_a_model_blames_the_input_not_the_params():
    model = jn.MLP([8, 3])
    _, p, s = model.init(KEY, (-1, 4))
    with pytest.raises(ValueError, match=r"Dense\(8\) expected input with last dimension 4, got \(64, 3\)") as e:
        model.apply(p, s, jnp.ones((64, 3)), train=False)
    assert "params[" not in str(e.value)
    assert not isinstance(e.value, ParamsMismatchError)
