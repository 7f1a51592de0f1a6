"""Checkpoints: round trip, bitwise resume, atomic writes, and every way a file can be wrong."""

import json
import os
import zipfile
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxnet as jn
from jaxnet.train import (
    FORMAT_VERSION,
    CheckpointError,
    EarlyStopping,
    History,
    fit,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from jaxnet.train import checkpoint as C

LOSS = "softmax_cross_entropy_with_integer_labels"


@pytest.fixture(scope="module")
def setup():
    model = jn.MLP([12, 3])
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 2))
    opt = jn.sgd(0.1)
    return model, params, state, opt, opt.init(params)


def _equal(a, b):
    jax.tree_util.tree_map(lambda u, v: np.testing.assert_array_equal(np.asarray(u), np.asarray(v)), a, b)
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)


def test_round_trip_keeps_values_dtypes_structure(setup, tmp_path):
    _model, params, state, _opt, opt_state = setup
    h = History([{"epoch": 1, "loss": 0.5}], stop_reason=None)
    key = jax.random.PRNGKey(42)
    path = save_checkpoint(
        tmp_path / "ck",
        params=params,
        state=state,
        opt_state=opt_state,
        step=7,
        key=key,
        history=h,
        config={"note": "hi"},
    )
    assert path.endswith("ck.npz") and os.listdir(tmp_path) == ["ck.npz"]  # no temporary file left behind
    ck = load_checkpoint(path, params=params, state=state, opt_state=opt_state)
    _equal(ck.params, params)
    _equal(ck.opt_state, opt_state)
    assert type(ck.opt_state) is type(opt_state) and ck.step == 7 and ck.config == {"note": "hi"}
    np.testing.assert_array_equal(np.asarray(ck.key), np.asarray(key))
    assert History.from_dict(ck.history).records == h.records
    meta, arrays = read_checkpoint(path)
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["entries"]["params/dense_0/w"] == {"shape": [2, 12], "dtype": "<f4"}
    assert meta["entries"]["opt_state/hyper/learning_rate"] == {"shape": [1], "dtype": "<f4"}  # named entries
    assert meta["checksum"] == C.checksum(arrays)


def test_typed_keys_are_stored_as_raw_data(setup, tmp_path):
    _, params, _state, _, _ = setup
    path = save_checkpoint(tmp_path / "k.npz", params=params, key=jax.random.key(3))
    back = load_checkpoint(path, params=params).key  # a typed key loads back typed (issue 13)
    assert back.dtype == jax.random.key(3).dtype
    np.testing.assert_array_equal(
        np.asarray(jax.random.key_data(back)), np.asarray(jax.random.key_data(jax.random.key(3)))
    )


def test_resume_is_bitwise_identical(tmp_path):
    x, y = jn.data.circle(jax.random.PRNGKey(1), 300)
    model, opt = jn.MLP([16, 2]), jn.sgd(0.2)
    kw = dict(
        batch_size=25,
        key=jax.random.PRNGKey(5),
        validation=0.2,
        progress=False,
        early_stopping=EarlyStopping(patience=50, restore_best=False),
    )  # resume from the last params
    full = fit(model, LOSS, opt, (x, y), epochs=6, **kw)

    part = fit(model, LOSS, opt, (x, y), epochs=3, **kw)
    path = save_checkpoint(
        tmp_path / "ck.npz",
        params=part.params,
        state=part.state,
        opt_state=part.opt_state,
        step=part.epoch,
        key=kw["key"],
        history=part.history,
    )
    del part
    _, like_p, like_s = model.init(jax.random.PRNGKey(0), (-1, 2))
    ck = load_checkpoint(path, params=like_p, state=like_s, opt_state=opt.init(like_p))
    rest = fit(
        model,
        LOSS,
        opt,
        (x, y),
        epochs=6,
        init=(ck.params, ck.state, ck.opt_state),
        initial_epoch=ck.step,
        history=History.from_dict(ck.history),
        **{**kw, "key": ck.key},
    )
    _equal(rest.params, full.params)
    _equal(rest.opt_state, full.opt_state)
    assert rest.history["val_loss"] == full.history["val_loss"] and rest.epoch == 6


def test_checkpoint_of_another_model_names_the_first_differing_path(setup, tmp_path):
    _, params, state, _, opt_state = setup
    path = save_checkpoint(tmp_path / "a.npz", params=params, state=state, opt_state=opt_state)
    _, wider, wstate = jn.MLP([13, 3]).init(jax.random.PRNGKey(0), (-1, 2))
    with pytest.raises(
        CheckpointError, match=r"another model: 'params/dense_0/b' is float32\[12\] there, float32\[13\] here"
    ):
        load_checkpoint(path, params=wider, state=wstate)
    _, deeper, dstate = jn.MLP([12, 12, 3]).init(jax.random.PRNGKey(0), (-1, 2))
    with pytest.raises(
        CheckpointError, match=r"another model: 'params/dense_2/b' is float32\[3\] there, float32\[12\] here"
    ):
        load_checkpoint(path, params=deeper, state=dstate)
    _, other, ostate = jn.serial(jn.Dense(12)).init(jax.random.PRNGKey(0), (-1, 2))
    with pytest.raises(CheckpointError, match="another model: it has 'params/dense_2/b', which this one lacks"):
        load_checkpoint(path, params=other, state=ostate)


def test_checkpoint_of_another_optimizer_is_rejected_by_its_hyperparameter_names(setup, tmp_path):
    _, params, _state, _, _ = setup
    # momentum SGD with and without dampening: the same moment buffers, different hyperparameters
    path = save_checkpoint(tmp_path / "a.npz", params=params, opt_state=jn.sgd(0.1, momentum=0.9).init(params))
    with pytest.raises(CheckpointError, match="hyper/learning_rate,momentum"):
        load_checkpoint(path, params=params, opt_state=jn.sgd(0.1, momentum=0.9, dampening=0.1).init(params))
    ck = load_checkpoint(path, params=params, opt_state=jn.sgd(0.5, momentum=0.1).init(params))
    np.testing.assert_allclose(
        np.asarray(ck.opt_state.hyper.values), [0.1, 0.9]
    )  # the stored values, not the template's


def test_truncated_and_corrupted_files_are_rejected(setup, tmp_path):
    _, params, state, _, opt_state = setup
    path = save_checkpoint(tmp_path / "a.npz", params=params, state=state, opt_state=opt_state)
    raw = Path(path).read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_checkpoint(tmp_path / "cut.npz", params=params)
    # flip one byte inside the stored weights: the zip CRC or the checksum must notice
    arrays = dict(np.load(path))
    flat = arrays["params/dense_0/w"].reshape(-1).view(np.uint8).copy()
    flat[3] ^= 0xFF
    arrays["params/dense_0/w"] = flat.view(np.float32).reshape(2, 12)
    np.savez(tmp_path / "flip.npz", **arrays)
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(tmp_path / "flip.npz", params=params)
    np.savez(tmp_path / "plain.npz", w=np.ones(3))
    with pytest.raises(CheckpointError, match="not a jaxnet checkpoint"):
        read_checkpoint(tmp_path / "plain.npz")
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        read_checkpoint(tmp_path / "missing.npz")


def test_newer_format_version_is_rejected(setup, tmp_path):
    _, params, *_ = setup
    path = save_checkpoint(tmp_path / "a.npz", params=params)
    arrays = dict(np.load(path))
    meta = json.loads(arrays["__metadata__"].tobytes())
    meta["format_version"] = FORMAT_VERSION + 1
    arrays["__metadata__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(tmp_path / "new.npz", **arrays)
    with pytest.raises(CheckpointError, match=f"format version {FORMAT_VERSION + 1}, newer than this jaxnet reads"):
        read_checkpoint(tmp_path / "new.npz")


def test_format_1_loads_params_but_not_its_optimizer_state(setup, tmp_path):
    # format 1 kept one array per hyperparameter; its params and state load, its optimizer state is refused
    _, params, state, _, opt_state = setup
    path = save_checkpoint(tmp_path / "a.npz", params=params, state=state, opt_state=opt_state)
    arrays = dict(np.load(path))
    meta = json.loads(arrays["__metadata__"].tobytes())
    meta["format_version"] = 1
    arrays["__metadata__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(tmp_path / "v1.npz", **arrays)
    with pytest.raises(
        CheckpointError,
        match=r"format version 1: its optimizer state keeps one array per hyperparameter.*load it with opt_state=None",
    ):
        load_checkpoint(tmp_path / "v1.npz", params=params, state=state, opt_state=opt_state)
    _equal(load_checkpoint(tmp_path / "v1.npz", params=params, state=state).params, params)


def test_loading_never_unpickles(tmp_path):
    # an object array would need pickle; np.load(allow_pickle=False) refuses it
    with zipfile.ZipFile(tmp_path / "evil.npz", "w") as z, z.open("__metadata__.npy", "w") as f:
        np.lib.format.write_array(f, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        read_checkpoint(tmp_path / "evil.npz")


def test_crash_mid_write_keeps_the_old_checkpoint(setup, tmp_path, monkeypatch):
    _, params, _state, _, _opt_state = setup
    path = save_checkpoint(tmp_path / "a.npz", params=params, step=1)
    before = Path(path).read_bytes()

    def crash(*a, **k):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(C.np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, params=params, step=2)
    assert Path(path).read_bytes() == before and os.listdir(tmp_path) == ["a.npz"]
    assert load_checkpoint(path, params=params).step == 1


def test_unsupported_values_raise(setup, tmp_path):
    _, params, *_ = setup
    with pytest.raises(TypeError, match="JSON-serializable"):
        save_checkpoint(tmp_path / "a.npz", params=params, config={"f": object()})
