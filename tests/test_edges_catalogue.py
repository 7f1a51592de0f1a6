"""A catalogue of bad inputs across jaxnet's public API (issue 13).

Every case must raise the named exception class with a message whose words name the
culprit (the argument, layer, path or value): never a raw JAX/XLA error, a Python-internal
exception (``KeyError``, ``AttributeError``, ``IndexError``...) or a silent result.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet as jn
from jaxnet import data as D
from jaxnet import optim as O
from jaxnet.nn import losses as L
from jaxnet.train import EarlyStopping
from jaxnet.train.checkpoint import CheckpointError

KEY = jax.random.PRNGKey(0)
X = jnp.ones((8, 3))
Y = jnp.zeros((8,), jnp.int32)
LOSS = "softmax_cross_entropy_with_integer_labels"
P = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}


def _init(layer, shape=(-1, 3)):
    return layer.init(KEY, shape)[1:]


def _apply(layer, x=X, *, init_shape=(-1, 3), **kw):
    p, s = _init(layer, init_shape)
    kw.setdefault("train", False)
    return layer.apply(p, s, x, **kw)


def _fit(**kw):
    args = dict(model=jn.Dense(2), loss=LOSS, optimizer=jn.sgd(0.1), train_data=(X, Y))
    args.update({k: kw.pop(k) for k in list(kw) if k in args})
    base = dict(epochs=1, batch_size=4, key=KEY, progress=False)
    base.update(kw)
    return jn.fit(args["model"], args["loss"], args["optimizer"], args["train_data"], **base)


def _ens(**kw):
    base = dict(members=2, epochs=1, batch_size=4, key=KEY, progress=False)
    base.update(kw)
    return jn.fit_ensemble(jn.Dense(2), LOSS, jn.sgd(0.1), (X, Y), **base)


def _state(opt, params=P):
    return opt.init(params)


def _bad_file(tmp, data: bytes):
    path = tmp / "bad.npz"
    path.write_bytes(data)
    return path


C = []  # (id, thunk, exception class, regex naming the culprit)


def case(cid, exc, words):
    def register(fn):
        C.append(pytest.param(fn, exc, words, id=cid))
        return fn

    return register


def add(cid, fn, exc, words):
    C.append(pytest.param(fn, exc, words, id=cid))


# --- layer constructors --------------------------------------------------------------------
add("Dense-n-0", lambda: jn.Dense(0), ValueError, r"Dense: n must be a positive int, got 0")
add("Dense-n-negative", lambda: jn.Dense(-3), ValueError, r"Dense: n must be a positive int, got -3")
add("Dense-n-float", lambda: jn.Dense(2.0), TypeError, r"Dense: n must be an int, got float 2\.0")
add("Dense-n-str", lambda: jn.Dense("8"), TypeError, r"Dense: n must be a positive int, got '8'")
add("Dense-n-bool", lambda: jn.Dense(True), TypeError, r"Dense: n must be a positive int, got True")
add("Dense-unknown-init", lambda: jn.Dense(2, w_init="nope"), ValueError, r"Dense\(2\) w_init.*'nope'")
add("BatchNorm-momentum", lambda: jn.BatchNorm(momentum=2.0), ValueError, r"BatchNorm: momentum must be <= 1")
add("BatchNorm-momentum-str", lambda: jn.BatchNorm(momentum="a"), TypeError, r"BatchNorm: momentum must be a real")
add("BatchNorm-eps-0", lambda: jn.BatchNorm(eps=0.0), ValueError, r"BatchNorm: eps must be > 0")
add("BatchNorm-eps-nan", lambda: jn.BatchNorm(eps=float("nan")), ValueError, r"BatchNorm: eps must be finite")
add("BatchNorm-affine", lambda: jn.BatchNorm(affine=1), TypeError, r"BatchNorm: affine must be a bool, got 1")
add("BatchNorm-axis", lambda: jn.BatchNorm(axis=1.5), TypeError, r"BatchNorm: axis must be an int")
add("Dropout-rate-high", lambda: jn.Dropout(1.5), ValueError, r"Dropout: rate must be <= 1")
add("Dropout-rate-str", lambda: jn.Dropout("a"), TypeError, r"Dropout: rate must be a real number")
add("Dropout-mode", lambda: jn.Dropout(0.5, mode="x"), ValueError, r"Dropout.*mode.*'x'")
add("serial-empty", lambda: jn.serial(), ValueError, r"serial\(\) needs at least one layer")
add("serial-uncalled", lambda: jn.serial(jn.Relu), TypeError, r"serial\(\): argument 0 must be a Layer.*Relu\(\)")
add("serial-non-layer", lambda: jn.serial(jn.Dense(2), 3), TypeError, r"serial\(\): argument 1 must be a Layer")
add("MLP-zero-width", lambda: jn.MLP([4, 0]), ValueError, r"got 0")

# --- layer init ----------------------------------------------------------------------------
add("init-int-shape", lambda: jn.Dense(2).init(KEY, 3), TypeError, r"Dense\(2\)\.init: input_shape must be a tuple")
add("init-None-shape", lambda: jn.Dense(2).init(KEY, None), TypeError, r"Dense\(2\)\.init: input_shape")
add("init-zero-size", lambda: jn.Dense(2).init(KEY, (-1, 0)), ValueError, r"sizes must be positive.*\(-1, 0\)")
add("init-str-shape", lambda: jn.Dense(2).init(KEY, ("a", 3)), TypeError, r"input_shape must be a tuple of ints")
add("init-unknown-features", lambda: jn.Dense(2).init(KEY, (-1, -1)), ValueError, r"last axis.*must be known")
add("init-key-None", lambda: jn.Dense(2).init(None, (-1, 3)), TypeError, r"Dense\(2\)\.init: key must be")
add("init-key-int", lambda: jn.Dense(2).init(0, (-1, 3)), TypeError, r"Dense\(2\)\.init: key must .*got the int 0")
add("BatchNorm-init-channels", lambda: jn.BatchNorm().init(KEY, (-1, -1)), ValueError, r"channel axis.*must be known")
add("BatchNorm-init-axis0", lambda: jn.BatchNorm(axis=0).init(KEY, (-1, 3)), ValueError, r"axis=0 is the batch axis")
add("serial-init-names-layer", lambda: jn.MLP([4, 2]).init(KEY, (-1, -1)), ValueError, r"layer 0 \(Dense\(4\)\)")

# --- layer apply ---------------------------------------------------------------------------
add("apply-no-train", lambda: jn.Dense(2).apply(*_init(jn.Dense(2)), X), TypeError, r"missing keyword argument train")
add("apply-train-str", lambda: _apply(jn.Dense(2), train="yes"), TypeError, r"train must be a Python bool")
add("apply-train-array", lambda: _apply(jn.Dense(2), train=jnp.asarray(True)), TypeError, r"train must be a Python")
add("apply-wrong-features", lambda: _apply(jn.Dense(2), jnp.ones((4, 5))), ValueError, r"Dense\(2\) expected input")
add("apply-needs-flatten", lambda: _apply(jn.Dense(2), jnp.ones((4, 2, 3)), init_shape=(-1, 6)), ValueError,
    r"Dense\(2\) expected input with last dimension 6, got \(4, 2, 3\); add Flatten\(\) before it")  # fmt: skip
add("apply-complex", lambda: _apply(jn.Dense(2), X.astype(jnp.complex64)), TypeError, r"must be real, got complex")
add("apply-mask-shape", lambda: _apply(jn.Dense(2), mask=jnp.ones(3)), ValueError, r"mask must have shape \[batch\]")
add("apply-mask-3d", lambda: _apply(jn.Dense(2), mask=jnp.ones((8, 3, 1))), ValueError, r"mask must have shape")
add("apply-mask-complex", lambda: _apply(jn.Dense(2), mask=jnp.ones(8, jnp.complex64)), TypeError, r"mask must hold")
add("apply-mask-str", lambda: _apply(jn.Dense(2), mask="all"), TypeError, r"mask must")
add("apply-params-other-model", lambda: jn.MLP([4, 3]).apply(*_init(jn.MLP([4, 5])), X, train=False), ValueError,
    r"params\['dense_2'\]\['w'\]: expected shape \(4, 3\), got \(4, 5\)")  # fmt: skip
add("apply-params-missing", lambda: jn.Dense(2).apply({"w": jnp.ones((3, 2))}, {}, X, train=False), ValueError,
    r"params\['b'\] is missing")  # fmt: skip
add("apply-params-None", lambda: jn.Dense(2).apply(None, {}, X, train=False), ValueError, r"params\['b'\] is missing")
add("apply-state-other", lambda: jn.BatchNorm().apply(_init(jn.BatchNorm())[0], {"mean": jnp.zeros(3)}, X,
    train=False), ValueError, r"state\['var'\] is missing")  # fmt: skip
add("BatchNorm-batch-of-one", lambda: _apply(jn.BatchNorm(), jnp.ones((1, 3)), train=True), ValueError,
    r"at least 2 values per channel")  # fmt: skip
add("BatchNorm-mask-on-channels", lambda: _apply(jn.BatchNorm(axis=1), jnp.ones((2, 3, 4)), init_shape=(-1, 3, 4),
    train=True, mask=jnp.ones((2, 3))), ValueError, r"covers the channel axis 1")  # fmt: skip
add("Dropout-no-key", lambda: _apply(jn.Dropout(0.5), train=True), ValueError, r"train=True needs a random key")
add("Dropout-batch-of-keys", lambda: _apply(jn.Dropout(0.5), train=True, key=jax.random.split(KEY, 2)), TypeError,
    r"Dropout\(0\.5\)\.apply: key must be one key")  # fmt: skip
add("Dropout-float-key", lambda: _apply(jn.Dropout(0.5), train=True, key=jnp.ones(2)), TypeError, r"dtype float32")
add("Flatten-scalar", lambda: jn.Flatten().apply({}, {}, jnp.ones(()), train=False), ValueError, r"Flatten\(\)")

# --- losses and metrics --------------------------------------------------------------------
add("loss-shape", lambda: L.squared_error(jnp.ones((4, 2)), jnp.ones((4, 3))), ValueError, r"squared_error: outputs")
add("loss-where-shape", lambda: L.squared_error(jnp.ones((4, 2)), jnp.ones((4, 2)), jnp.ones(3)), ValueError,
    r"squared_error: where must have shape \(4,\)")  # fmt: skip
add("loss-where-negative", lambda: L.squared_error(jnp.ones((2, 1)), jnp.ones((2, 1)), jnp.array([1.0, -2.0])),
    ValueError, r"where must hold finite weights >= 0")  # fmt: skip
add("loss-where-nan", lambda: L.squared_error(jnp.ones((2, 1)), jnp.ones((2, 1)), jnp.array([1.0, jnp.nan])),
    ValueError, r"where must hold finite weights")  # fmt: skip
add("loss-where-str", lambda: L.squared_error(jnp.ones((2, 1)), jnp.ones((2, 1)), "all"), TypeError, r"where must")
add("loss-complex-outputs", lambda: L.mean_squared_error(jnp.ones((2, 1), jnp.complex64), jnp.ones((2, 1))), TypeError,
    r"mean_squared_error: outputs must be real")  # fmt: skip
add("loss-str-targets", lambda: L.squared_error(jnp.ones((2, 1)), "y"), TypeError, r"squared_error: targets must")
add("int-loss-float-labels", lambda: L.softmax_cross_entropy_with_integer_labels(jnp.ones((2, 3)), jnp.ones(2)),
    TypeError, r"labels must be integers")  # fmt: skip
add("int-loss-label-shape", lambda: L.softmax_cross_entropy_with_integer_labels(jnp.ones((2, 3)), jnp.ones(3, int)),
    ValueError, r"labels must have shape \(2,\)")  # fmt: skip
add("int-loss-label-negative", lambda: L.softmax_cross_entropy_with_integer_labels(jnp.ones((2, 3)),
    jnp.array([0, -1])), ValueError, r"label -1 at index 1 is outside \[0, 3\)")  # fmt: skip
add("int-loss-label-too-large", lambda: L.softmax_cross_entropy_with_integer_labels(jnp.ones((2, 3)),
    jnp.array([3, 0])), ValueError, r"label 3 at index 0 is outside \[0, 3\)")  # fmt: skip
add("accuracy-label-range", lambda: L.accuracy(jnp.ones((2, 3)), jnp.array([0, 7])), ValueError, r"label 7 at index 1")
add("accuracy-one-class", lambda: L.accuracy(jnp.ones((2, 1)), jnp.array([0, 1])), ValueError, r"at least 2 classes")
add("soft-ce-shape", lambda: L.softmax_cross_entropy(jnp.ones((2, 3)), jnp.ones((2, 2))), ValueError,
    r"softmax_cross_entropy: outputs and targets must have the same shape")  # fmt: skip
add("bce-shape", lambda: L.binary_cross_entropy(jnp.ones((2, 1)) / 2, jnp.ones(3)), ValueError, r"binary_cross_entropy")
add("bce-logits-complex", lambda: L.binary_cross_entropy_with_logits(jnp.ones((2, 1), jnp.complex64), jnp.ones(2)),
    TypeError, r"binary_cross_entropy_with_logits: outputs must be real")  # fmt: skip
add("get-loss-unknown", lambda: L.get_loss("l2"), ValueError, r"unknown loss 'l2'")
add("get-loss-int", lambda: L.get_loss(3), ValueError, r"unknown loss 3")

# --- optimizers ----------------------------------------------------------------------------
add("sgd-lr-negative", lambda: O.sgd(-0.1), ValueError, r"sgd: learning_rate must be a finite number >= 0")
add("sgd-lr-nan", lambda: O.sgd(float("nan")), ValueError, r"sgd: learning_rate must be a finite number")
add("sgd-lr-str", lambda: O.sgd("0.1"), TypeError, r"sgd: learning_rate must be a number, got '0.1'")
add("sgd-lr-vector", lambda: O.sgd(jnp.ones(2)), ValueError, r"sgd: learning_rate must be a scalar")
add("sgd-momentum-negative", lambda: O.sgd(0.1, momentum=-1), ValueError, r"sgd: momentum must be")
add("sgd-dampening", lambda: O.sgd(0.1, momentum=0.9, dampening=2), ValueError, r"sgd: dampening must be")
add("sgd-nesterov-no-momentum", lambda: O.sgd(0.1, nesterov=True), ValueError, r"nesterov=True needs momentum > 0")
add("sgd-nesterov-str", lambda: O.sgd(0.1, nesterov="yes"), TypeError, r"sgd: nesterov must be a bool")
add("sgd-schedule-negative", lambda: O.sgd(lambda t: -0.1 + 0 * t), ValueError, r"schedule given as learning_rate")
add("sgd-schedule-vector", lambda: O.sgd(lambda t: jnp.ones(2) * t), ValueError, r"must return a scalar")
add("adam-b1-one", lambda: O.adam(1e-3, b1=1.0), ValueError, r"adam: b1 must be a finite number in \[0.0, 1.0\)")
add("adam-b2-negative", lambda: O.adam(1e-3, b2=-0.5), ValueError, r"adam: b2 must be")
add("adam-eps-negative", lambda: O.adam(1e-3, eps=-1e-8), ValueError, r"adam: eps must be")
add("adam-amsgrad-str", lambda: O.adam(1e-3, amsgrad="no"), TypeError, r"adam: amsgrad must be a bool")
add("adamw-decay-negative", lambda: O.adamw(1e-3, weight_decay=-1), ValueError, r"adamw: weight_decay must be")
add("rmsprop-alpha-one", lambda: O.rmsprop(1e-3, alpha=1.0), ValueError, r"rmsprop: alpha must be")
add("rmsprop-centered-int", lambda: O.rmsprop(1e-3, centered=1), TypeError, r"rmsprop: centered must be a bool")
add("adagrad-eps-negative", lambda: O.adagrad(0.1, eps=-1.0), ValueError, r"adagrad: eps must be")
add("chain-empty", lambda: O.chain(), ValueError, r"chain\(\) needs at least one transform")
add("chain-non-optimizer", lambda: O.chain(O.sgd(0.1), 3), TypeError, r"chain\(\) argument 1 must be an Optimizer")
add("clip-negative", lambda: O.clip_by_global_norm(-1.0), ValueError, r"clip_by_global_norm: max_norm must be")
add("clip-value-nan", lambda: O.clip_by_value(float("inf")), ValueError, r"clip_by_value: max_delta must be")
add("sgd-update-adam-state", lambda: O.sgd(0.1).update(P, _state(O.adam(1e-3))), TypeError,
    r"sgd.update: got the state of another optimizer \(AdamState\)")  # fmt: skip
add("adam-update-None", lambda: O.adam(1e-3).update(P, None), TypeError, r"adam.update: opt_state is None")
add("adam-update-other-shapes", lambda: O.adam(1e-3).update(P, _state(O.adam(1e-3), {"w": jnp.ones((2, 4)),
    "b": jnp.zeros(3)})), ValueError, r"opt_state.mu\['w'\] has shape \(2, 4\), its gradient \(2, 3\)")  # fmt: skip
add("adam-update-other-tree", lambda: O.adam(1e-3).update(P, _state(O.adam(1e-3), {"w": jnp.ones((2, 3))})),
    ValueError, r"adam.update: opt_state.mu has the structure")  # fmt: skip
add("rmsprop-update-centered-state", lambda: O.rmsprop(1e-3).update(P, _state(O.rmsprop(1e-3, centered=True))),
    ValueError, r"rmsprop.update: opt_state.mu is set.*built with other options")  # fmt: skip
add("adagrad-update-sgd-state", lambda: O.adagrad(0.1).update(P, _state(O.sgd(0.1))), TypeError, r"adagrad.update")
add("chain-update-wrong-state", lambda: O.chain(O.sgd(0.1)).update(P, None), TypeError, r"chain.update: expected")
add("clip-update-wrong-state", lambda: O.clip_by_global_norm(1.0).update(P, _state(O.sgd(0.1))), TypeError,
    r"clip_by_global_norm.update: got the state of another optimizer")  # fmt: skip
add("init-int-params", lambda: O.adam(1e-3).init({"n": jnp.ones(2, jnp.int32)}), TypeError,
    r"adam.init: params\['n'\] has dtype int32")  # fmt: skip
add("init-bool-params", lambda: O.sgd(0.1).init({"m": jnp.ones(2, bool)}), TypeError, r"sgd.init: params\['m'\]")
add("set-hyper-unknown", lambda: O.set_hyperparameter(_state(O.sgd(0.1)), "beta", 0.1), ValueError,
    r"no hyperparameter 'beta'")  # fmt: skip
add("set-hyper-negative", lambda: O.set_hyperparameter(_state(O.sgd(0.1)), "learning_rate", -1.0), ValueError,
    r"set_hyperparameter: learning_rate must be")  # fmt: skip
add("set-hyper-scheduled", lambda: O.set_hyperparameter(_state(O.sgd(O.cosine_decay(0.1, 10))), "learning_rate",
    0.1), ValueError, r"learning_rate.*follows a schedule")  # fmt: skip

# --- EarlyStopping, fit, evaluate, steps -------------------------------------------------------
add("es-patience-0", lambda: EarlyStopping(patience=0), ValueError, r"EarlyStopping: patience must be an int >= 1")
add("es-min-delta", lambda: EarlyStopping(min_delta=-1), ValueError, r"EarlyStopping: min_delta must be")
add("es-mode", lambda: EarlyStopping(mode="up"), ValueError, r"EarlyStopping: mode must be 'min', 'max' or 'auto'")
add("es-unknown-monitor", lambda: EarlyStopping(monitor="val_score"), ValueError, r"'val_score'.*give mode='min'")
add("es-monitor-int", lambda: EarlyStopping(monitor=3), TypeError, r"EarlyStopping: monitor must be a history key")
add("fit-model", lambda: _fit(model="dense"), TypeError, r"fit: model must be a Layer, got str")
add("fit-optimizer-str", lambda: _fit(optimizer="adam"), TypeError, r"fit: optimizer must be an Optimizer")
add("fit-epochs-0", lambda: _fit(epochs=0), ValueError, r"fit: epochs must be a positive int, got 0")
add("fit-epochs-float", lambda: _fit(epochs=1.5), TypeError, r"fit: epochs must be a positive int, got 1\.5")
add("fit-batch-0", lambda: _fit(batch_size=0), ValueError, r"fit: batch_size must be a positive int, got 0")
add("fit-batch-too-large", lambda: _fit(batch_size=100), ValueError, r"batch_size 100 is larger than the 8")
add("fit-data-not-tuple", lambda: _fit(train_data=X), TypeError, r"fit: train_data must be a tuple \(x, y\)")
add("fit-length-mismatch", lambda: _fit(train_data=(X, Y[:5])), ValueError, r"same length, got 8 and 5")
add("fit-empty", lambda: _fit(train_data=(X[:0], Y[:0])), ValueError, r"fit: train_data is empty")
add("fit-labels-range", lambda: _fit(train_data=(X, Y.at[3].set(5))), ValueError, r"labels must lie in \[0, 2\)")
add("fit-labels-negative", lambda: _fit(train_data=(X, Y.at[3].set(-1))), ValueError, r"labels from -1 to 0")
add("fit-loss-unknown", lambda: _fit(loss="hinge"), ValueError, r"unknown loss 'hinge'")
add("fit-output-loss-mismatch", lambda: _fit(loss="squared_error"), ValueError, r"does not fit the loss squared_error")
add("fit-input-mismatch", lambda: _fit(train_data=(jnp.ones((8, 5)), Y), init=(*_init(jn.Dense(2)),
    _state(jn.sgd(0.1), _init(jn.Dense(2))[0]))), ValueError,
    r"cannot take inputs of shape \(5,\).*last dimension 3")  # fmt: skip
add("fit-validation-fraction", lambda: _fit(validation=1.5), ValueError, r"validation as a fraction must lie in")
add("fit-validation-shape", lambda: _fit(validation=(X, Y[:3])), ValueError, r"validation x and y must have the same")
add("fit-initial-epoch", lambda: _fit(initial_epoch=5), ValueError, r"initial_epoch must be an int in \[0, epochs=1\]")
add("fit-early-stopping-str", lambda: _fit(early_stopping="val_loss"), TypeError, r"early_stopping must be")
add("fit-monitor-not-recorded", lambda: _fit(early_stopping=EarlyStopping()), ValueError, r"monitors 'val_loss'")
add("fit-key-None", lambda: _fit(key=None), TypeError, r"fit: key must be a jax.random key")
add("fit-key-float", lambda: _fit(key=1.5), TypeError, r"fit: key must .*got the float 1\.5")
add("fit-init-not-tuple", lambda: _fit(init={"w": 1}), TypeError, r"fit: init must be a tuple \(params, state")
add("fit-metric-not-callable", lambda: _fit(metrics={"acc": 3}), TypeError, r"metrics\['acc'\] must be a callable")
add("fit-metric-named-loss", lambda: _fit(metrics={"loss": L.accuracy}), ValueError, r"'loss' is reserved")
add("fit-penalty-not-callable", lambda: _fit(penalty=3), TypeError, r"penalty must be a callable")
add("fit-augment-not-callable", lambda: _fit(augment="flip"), TypeError, r"augment must be a callable")
add("fit-history-list", lambda: _fit(history=[]), TypeError, r"history must be a History or the dict")
add("fit-epochs-per-call-0", lambda: _fit(epochs_per_call=0), ValueError, r"epochs_per_call must be a positive int")
add("ensemble-members-0", lambda: _ens(members=0), ValueError, r"fit_ensemble: members must be a positive int")
add("ensemble-optimizer-str", lambda: jn.fit_ensemble(jn.Dense(2), LOSS, "adam", (X, Y), members=2, epochs=1,
    batch_size=4, key=KEY), TypeError, r"fit_ensemble: optimizer must be an Optimizer")  # fmt: skip
add("ensemble-subsets-str", lambda: _ens(subsets="half"), ValueError, r"subsets must be None, 'bootstrap'")
add("ensemble-subsets-shape", lambda: _ens(subsets=jnp.ones((3, 8))), ValueError, r"must have shape \(2, 8\)")
add("ensemble-subsets-negative", lambda: _ens(subsets=-jnp.ones((2, 8))), ValueError, r"weights must be >= 0")
add("ensemble-hyper-length", lambda: _ens(hyperparams={"learning_rate": [0.1, 0.2, 0.3]}), ValueError,
    r"hyperparams\['learning_rate'\] must have 2 values")  # fmt: skip
add("ensemble-hyper-unknown", lambda: _ens(hyperparams={"beta": [0.1, 0.2]}), ValueError, r"no hyperparameter 'beta'")
add("ensemble-epochs-per-call", lambda: _ens(epochs_per_call=0), ValueError, r"epochs_per_call must be a positive")
add("ensemble-key-None", lambda: _ens(key=None), TypeError, r"fit_ensemble: key must be")
add("evaluate-batch-0", lambda: jn.evaluate(jn.Dense(2), LOSS, *_init(jn.Dense(2)), (X, Y), batch_size=0), ValueError,
    r"evaluate: batch_size must be a positive int, got 0")  # fmt: skip
add("evaluate-data", lambda: jn.evaluate(jn.Dense(2), LOSS, *_init(jn.Dense(2)), X), TypeError,
    r"evaluate: data must be a tuple")  # fmt: skip
add("step-model", lambda: jn.make_train_step("mlp", LOSS, jn.sgd(0.1)), TypeError, r"model must be a Layer")
add("step-optimizer", lambda: jn.make_train_step(jn.Dense(2), LOSS, object()), TypeError, r"optimizer must be an")
add("step-batch", lambda: jn.make_train_step(jn.Dense(2), LOSS, jn.sgd(0.1), jit=False)(*_init(jn.Dense(2)),
    _state(jn.sgd(0.1), _init(jn.Dense(2))[0]), X, None), TypeError, r"batch must be a tuple \(x, y\)")  # fmt: skip
add("eval-step-model", lambda: jn.make_eval_step(3, LOSS), TypeError, r"model must be a Layer, got int")

# --- checkpoints ---------------------------------------------------------------------------


@case("ckpt-step-float", TypeError, r"save_checkpoint: step must be an int.*2\.7")
def _(tmp_path):
    jn.save_checkpoint(tmp_path / "c", params=P, step=2.7)


@case("ckpt-step-negative", ValueError, r"save_checkpoint: step must be >= 0, got -1")
def _(tmp_path):
    jn.save_checkpoint(tmp_path / "c", params=P, step=-1)


@case("ckpt-step-str", TypeError, r"save_checkpoint: step must be an int")
def _(tmp_path):
    jn.save_checkpoint(tmp_path / "c", params=P, step="3")


@case("ckpt-key-float", TypeError, r"save_checkpoint: key must .*dtype float32")
def _(tmp_path):
    jn.save_checkpoint(tmp_path / "c", params=P, key=jnp.ones(2))


@case("ckpt-history-not-json", TypeError, r"history and config must be JSON-serializable")
def _(tmp_path):
    jn.save_checkpoint(tmp_path / "c", params=P, history={"f": object()})


@case("ckpt-complex-params", CheckpointError, r"params/w has dtype complex64")
def _(tmp_path):
    jn.save_checkpoint(tmp_path / "c", params={"w": jnp.ones(2, jnp.complex64)})


@case("ckpt-path-is-directory", IsADirectoryError, r"is a directory; give a file name")
def _(tmp_path):
    (tmp_path / "d.npz").mkdir()
    jn.save_checkpoint(tmp_path / "d.npz", params=P)


@case("ckpt-path-is-plain-directory", IsADirectoryError, r"is a directory; give a file name")
def _(tmp_path):
    # a directory without the suffix: once wrote DIR.npz beside it
    (tmp_path / "runs").mkdir()
    try:
        jn.save_checkpoint(tmp_path / "runs", params=P)
    finally:
        assert not (tmp_path / "runs.npz").exists()


@case("ckpt-missing-file", FileNotFoundError, r"no checkpoint at")
def _(tmp_path):
    jn.load_checkpoint(tmp_path / "none.npz", params=P)


@case("ckpt-random-bytes", CheckpointError, r"is not a jaxnet checkpoint \(a \.npz zip archive")
def _(tmp_path):
    jn.load_checkpoint(_bad_file(tmp_path, b"not a zip at all"), params=P)


@case("ckpt-truncated", CheckpointError, r"truncated or corrupted")
def _(tmp_path):
    path = jn.save_checkpoint(tmp_path / "c", params=P)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    jn.load_checkpoint(path, params=P)


@case("ckpt-plain-npz", CheckpointError, r"is not a jaxnet checkpoint")
def _(tmp_path):
    np.savez(tmp_path / "p.npz", a=np.ones(2))
    jn.load_checkpoint(tmp_path / "p.npz", params=P)


@case("ckpt-other-model", CheckpointError, r"is from another model: 'params/w' is float32\[2, 3\] there")
def _(tmp_path):
    path = jn.save_checkpoint(tmp_path / "c", params=P)
    jn.load_checkpoint(path, params={"w": jnp.ones((2, 4)), "b": jnp.zeros(3)})


@case("ckpt-other-optimizer", CheckpointError, r"is from another optimizer")
def _(tmp_path):
    path = jn.save_checkpoint(tmp_path / "c", params=P, opt_state=O.sgd(0.1).init(P))
    jn.load_checkpoint(path, params=P, opt_state=O.adam(1e-3).init(P))


# --- data ----------------------------------------------------------------------------------
add("idx-bad-magic", lambda: D.parse_idx(b"\x01\x02\x03\x04"), ValueError, r"wrong magic number 0x01020304")
add("idx-short", lambda: D.parse_idx(b"\x00"), ValueError, r"truncated, only 1 bytes")
add("idx-overflow", lambda: D.parse_idx(b"\x00\x00\x08\x02" + b"\xff" * 8), ValueError, r"truncated, shape")
add("idx-missing", lambda: D.read_idx("/nonexistent/file-idx"), FileNotFoundError, r"file-idx")
add("write-idx-complex", lambda: D.write_idx("/tmp/x", np.ones(2, np.complex64)), TypeError, r"IDX cannot store")
add("permutation-key", lambda: D.permutation(None, 4), TypeError, r"permutation: key must")
add("shuffle-batch-0", lambda: D.shuffle_batches(KEY, 8, 0), ValueError, r"batch_size")
add("shuffle-batch-too-large", lambda: D.shuffle_batches(KEY, 8, 9), ValueError, r"batch_size")
add("split-test-fraction", lambda: D.train_test_split(KEY, X, Y, test=1.5), ValueError, r"test")
add("split-length-mismatch", lambda: D.train_test_split(KEY, X, Y[:3]), ValueError, r"8.*3|3.*8")
add("circle-key", lambda: D.circle(jnp.ones(2), 10), TypeError, r"circle: key must .*dtype float32")
add("blobs-key-batch", lambda: D.blobs(jax.random.split(KEY, 2), 10), TypeError, r"blobs: key must be one key")
add("rotate-key-None", lambda: D.augment.rotate(None, jnp.ones((2, 4, 4))), TypeError, r"augment: key must")
add("pipeline-key-int", lambda: D.pipeline(D.augment.rotate)(3, jnp.ones((2, 4, 4))), TypeError,
    r"pipeline: key must .*got the int 3")  # fmt: skip
add("make-augment-key-None", lambda: D.make_augment(rotation=0.1)(None, jnp.ones((2, 4, 4))), TypeError,
    r"augment: key must")  # fmt: skip
add("initializer-key-None", lambda: jn.nn.initializers.get("he_normal")(None, (2, 3)), TypeError,
    r"variance_scaling: key must")  # fmt: skip
add("initializer-key-batch", lambda: jn.nn.initializers.normal(0.1)(jax.random.split(KEY, 2), (2, 3)), TypeError,
    r"normal: key must be one key")  # fmt: skip
add("initializer-key-float", lambda: jn.nn.initializers.uniform(0.1)(jnp.ones(2), (2, 3)), TypeError,
    r"uniform: key must .*dtype float32")  # fmt: skip


@pytest.mark.parametrize("thunk, exc, words", C)
def test_bad_input_raises_a_clear_error(thunk, exc, words, tmp_path):
    import inspect

    args = (tmp_path,) if inspect.signature(thunk).parameters else ()
    with pytest.raises(exc) as info:
        thunk(*args)
    assert info.type is exc or issubclass(info.type, exc)
    assert info.match(words)
    # never a raw JAX/XLA error or a Python-internal exception
    assert type(info.value).__module__.split(".")[0] not in ("jax", "jaxlib")
    assert not isinstance(info.value, (KeyError, AttributeError, IndexError, AssertionError))
    assert "XlaRuntimeError" not in str(info.value) and "Traceback" not in str(info.value)


def test_catalogue_is_large():
    assert len(C) >= 120
