"""fit: history, validation, early stopping, the non-finite guard, bad input, no recompilation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet as jn
from jaxnet.nn import losses
from jaxnet.train import EarlyStopping, NonFiniteWarning, evaluate, fit, make_train_step
from jaxnet.train import epoch as engine

LOSS = "softmax_cross_entropy_with_integer_labels"
ACC = {"accuracy": losses.accuracy}


@pytest.fixture(scope="module")
def blobs():
    x, y = jn.data.blobs(jax.random.PRNGKey(0), 240, centers=3, std=2.0)
    return jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32)


@pytest.fixture(scope="module")
def model():
    return jn.MLP([16, 3])


def test_fit_learns_and_records_history(blobs, model, capsys):
    opt = jn.sgd(0.1)
    r = fit(
        model,
        LOSS,
        opt,
        blobs,
        epochs=6,
        batch_size=20,
        key=jax.random.PRNGKey(1),
        validation=0.25,
        metrics=ACC,
        progress=False,
    )
    h = r.history
    assert len(h) == 6 and r.epoch == 6 and h.stop_reason is None
    assert h.keys() == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "time"]
    assert h["epoch"] == [1, 2, 3, 4, 5, 6] and all(t > 0 for t in h["time"])
    assert h["loss"][-1] < h["loss"][0] and h["val_accuracy"][-1] > 0.8
    assert int(r.opt_state.count) == 6 * (180 // 20)  # 60 validation samples held out, 180 train
    assert capsys.readouterr().out == "" and capsys.readouterr().err == ""


def test_validation_given_and_same_key_same_bits(blobs, model):
    x, y = blobs
    kw = dict(
        epochs=2, batch_size=16, key=jax.random.PRNGKey(3), metrics=ACC, progress=False, validation=(x[:40], y[:40])
    )
    a = fit(model, LOSS, jn.sgd(0.1), (x[40:], y[40:]), **kw)
    b = fit(model, LOSS, jn.sgd(0.1), (x[40:], y[40:]), **kw)
    jax.tree_util.tree_map(lambda u, v: np.testing.assert_array_equal(np.asarray(u), np.asarray(v)), a.params, b.params)
    ev = evaluate(model, LOSS, a.params, a.state, (x[:40], y[:40]), metrics=ACC, batch_size=16)  # padded batches
    assert ev["loss"] == pytest.approx(a.history["val_loss"][-1], rel=1e-5)
    assert ev["accuracy"] == pytest.approx(a.history["val_accuracy"][-1], abs=1e-6)


def test_several_epochs_per_dispatch_equal_one_per_dispatch(blobs, model):
    kw = dict(epochs=5, batch_size=20, key=jax.random.PRNGKey(4), validation=0.25, progress=False)
    a = fit(model, LOSS, jn.sgd(0.1), blobs, epochs_per_call=1, **kw)
    b = fit(model, LOSS, jn.sgd(0.1), blobs, epochs_per_call=3, **kw)  # 3 + 3 with the last one masked
    assert len(b.history) == 5 and b.epoch == 5
    jax.tree_util.tree_map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-7), a.params, b.params)
    np.testing.assert_allclose(a.history["val_loss"], b.history["val_loss"], rtol=1e-6)


def test_early_stopping_restores_the_best_epoch(blobs, model):
    x, y = blobs
    # noisy labels on a small training set: validation loss turns up while training loss falls
    y_noisy = jnp.where(jax.random.uniform(jax.random.PRNGKey(5), y.shape) < 0.35, (y + 1) % 3, y)
    stop = EarlyStopping(patience=3, min_delta=0.0)
    opt = jn.sgd(0.1)  # 0.5 diverges for some shuffles (1 key in 6)
    r = fit(
        jn.MLP([64, 64, 3]),
        LOSS,
        opt,
        (x[:60], y_noisy[:60]),
        epochs=200,
        batch_size=10,
        key=jax.random.PRNGKey(6),
        validation=(x[60:], y[60:]),
        early_stopping=stop,
        progress=False,
    )
    h = r.history
    assert h.stop_reason == "early_stopping" and len(h) < 200
    vl = h["val_loss"]
    best = int(np.argmin(vl))
    assert h.best_epoch == best + 1 and len(h) == best + 1 + 3  # stopped `patience` epochs after the best
    got = evaluate(jn.MLP([64, 64, 3]), LOSS, r.params, r.state, (x[60:], y[60:]))["loss"]
    # the returned params are the best epoch's: their validation loss is the minimum
    assert got == pytest.approx(vl[best], rel=1e-5)


def test_early_stopping_min_delta_and_validation():
    with pytest.raises(ValueError, match="patience must be an int >= 1, got 0"):
        EarlyStopping(patience=0)
    with pytest.raises(ValueError, match="min_delta must be a finite number >= 0"):
        EarlyStopping(min_delta=-1)
    with pytest.raises(ValueError, match="mode must be"):
        EarlyStopping(mode="up")
    assert EarlyStopping("val_accuracy").minimize is False and EarlyStopping().minimize is True


def test_nonfinite_guard_returns_last_finite_params(blobs, model):
    x, y = blobs
    x = x * 1e4  # a huge learning rate on large inputs overflows within a few steps
    opt = jn.sgd(1e8)
    with pytest.warns(NonFiniteWarning, match=r"non-finite loss or parameters at epoch 1, step \d+"):
        r = fit(model, LOSS, opt, (x, y), epochs=3, batch_size=20, key=jax.random.PRNGKey(2), progress=False)
    h = r.history
    assert h.stop_reason == "nonfinite" and h.nonfinite["epoch"] == 1 and len(h) == 1
    bad = h.nonfinite["step"]
    assert all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree_util.tree_leaves(r.params))
    assert int(r.opt_state.count) == bad  # exactly the finite steps were applied

    # replay the first `bad` steps in Python with the documented keys: same params
    _, p, s = model.init(jax.random.fold_in(jax.random.PRNGKey(2), 0), (-1, 2))
    o = opt.init(p)
    k = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(2), 2), 0)
    k_shuffle, k_steps = jax.random.split(k)
    idx, _ = jn.data.shuffle_batches(k_shuffle, 240, 20)
    step = make_train_step(model, LOSS, opt)
    for i in range(bad + 1):
        p_new, s, o, m = step(
            jax.tree_util.tree_map(jnp.copy, p), s, o, (x[idx[i]], y[idx[i]]), jax.random.fold_in(k_steps, i)
        )
        if i < bad:
            p = p_new
    assert not (
        bool(jnp.isfinite(m["loss"])) and all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree_util.tree_leaves(p_new))
    )
    jax.tree_util.tree_map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-6), r.params, p)


def test_second_fit_with_same_shapes_does_not_retrace(blobs, model):
    traces = []

    def counted_accuracy(out, y, where=None):
        traces.append(1)  # runs only while jax traces the training program
        return losses.accuracy(out, y, where)

    opt = jn.sgd(0.1)
    kw = dict(epochs=2, batch_size=20, metrics={"acc": counted_accuracy}, progress=False, validation=0.25)
    fit(model, LOSS, opt, blobs, key=jax.random.PRNGKey(0), **kw)
    first = len(traces)
    size = engine.run_epochs_jit._cache_size()
    assert first > 0
    fit(model, LOSS, opt, blobs, key=jax.random.PRNGKey(1), **kw)  # new key, same shapes and objects
    assert len(traces) == first and engine.run_epochs_jit._cache_size() == size


def test_fit_traces_the_step_and_the_eval_step_once_each(blobs, model):
    # One trace of the training metrics (inside the one step of the epoch program) and one of the
    # evaluation metrics (the validation pass): no shape probes, no second copy for the replay (issue 16).
    traces = []

    def counted_accuracy(out, y, where=None):
        traces.append(1)
        return losses.accuracy(out, y, where)

    kw = dict(epochs=2, batch_size=20, metrics={"acc": counted_accuracy}, progress=False, validation=0.25)
    r = fit(model, LOSS, jn.adam(1e-2), blobs, key=jax.random.PRNGKey(3), epochs_per_call=2, **kw)
    assert len(traces) == 2 and len(r.history) == 2


def test_progress_bar_shows_epochs(blobs, model, capsys):
    pytest.importorskip("tqdm")
    fit(model, LOSS, jn.sgd(0.1), blobs, epochs=2, batch_size=40, key=jax.random.PRNGKey(0), metrics=ACC, progress=True)
    err = capsys.readouterr().err
    assert "2/2" in err and "accuracy=" in err and "loss=" in err


def test_bad_input_errors(blobs, model):
    x, y = blobs
    kw = dict(epochs=1, batch_size=10, key=jax.random.PRNGKey(0), progress=False)
    with pytest.raises(ValueError, match="x and y must have the same length, got 240 and 239"):
        fit(model, LOSS, jn.sgd(0.1), (x, y[:-1]), **kw)
    with pytest.raises(
        ValueError, match=r"labels must lie in \[0, 3\) for a model with 3 output\(s\), got labels from 0 to 7"
    ):
        fit(model, LOSS, jn.sgd(0.1), (x, y.at[5].set(7)), **kw)
    with pytest.raises(ValueError, match=r"labels must lie in .* got labels from -1"):
        fit(model, LOSS, jn.sgd(0.1), (x, y.at[5].set(-1)), **kw)
    with pytest.raises(ValueError, match="batch_size 500 is larger than the 240 training samples"):
        fit(model, LOSS, jn.sgd(0.1), (x, y), **{**kw, "batch_size": 500})
    with pytest.raises(ValueError, match=r"output shape \('batch', 3\) does not fit the loss squared_error"):
        fit(model, "squared_error", jn.sgd(0.1), (x, y), **kw)
    for bad in (0, -3):
        with pytest.raises(ValueError, match=f"epochs must be a positive int, got {bad}"):
            fit(model, LOSS, jn.sgd(0.1), (x, y), **{**kw, "epochs": bad})
    with pytest.raises(TypeError, match=r"epochs must be a positive int, got 2\.5"):
        fit(model, LOSS, jn.sgd(0.1), (x, y), **{**kw, "epochs": 2.5})
    with pytest.raises(ValueError, match=r"early_stopping monitors 'val_loss'.*give validation="):
        fit(model, LOSS, jn.sgd(0.1), (x, y), early_stopping=EarlyStopping(), **kw)
    with pytest.raises(ValueError, match="cannot take inputs of shape"):
        fit(model, LOSS, jn.sgd(0.1), (x, y), init=(*model.init(jax.random.PRNGKey(0), (-1, 5))[1:], None), **kw)
    # another optimizer's state in init= is blamed on init=, before anything compiles
    _, p0, s0 = model.init(jax.random.PRNGKey(0), (-1, x.shape[1]))
    with pytest.raises(
        TypeError, match=r"fit: init=\(params, state, opt_state\): the opt_state does not fit.*SgdState"
    ):
        fit(model, LOSS, jn.adam(1e-3), (x, y), init=(p0, s0, jn.sgd(0.1).init(p0)), **kw)
