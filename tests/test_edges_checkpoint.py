"""Issue 13, items 10 and 12: checkpoints that survive kills, hold bfloat16 bit for bit, refuse
bad steps and zip-level corruption clearly; FitResult says which epoch each part is from."""

import os
import random
import signal
import struct
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet as jn
from jaxnet.train.checkpoint import CheckpointError, read_checkpoint, temporary_path

P = {"dense_0": {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.zeros(3)}}


def test_bfloat16_params_and_optimizer_state_round_trip_bit_exactly(tmp_path):
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=(4, 5)), jnp.bfloat16), "b": jnp.asarray([1e-3, -7.5], jnp.bfloat16)}
    opt = jn.adam(1e-3)
    o = opt.init(params)
    o = opt.update(params, o, params)[1]  # moments with real values
    path = jn.save_checkpoint(tmp_path / "bf", params=params, opt_state=o, step=1)
    ck = jn.load_checkpoint(path, params=params, opt_state=o)
    for a, b in zip(
        jax.tree_util.tree_leaves((params, o)), jax.tree_util.tree_leaves((ck.params, ck.opt_state)), strict=True
    ):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(
            np.atleast_1d(np.asarray(a)).view(np.uint8), np.atleast_1d(np.asarray(b)).view(np.uint8)
        )


@pytest.mark.parametrize("step, error, words", [(2.7, TypeError, "step must be an int"), (-1, ValueError, ">= 0")])
def test_bad_step_raises(tmp_path, step, error, words):
    with pytest.raises(error, match=words):
        jn.save_checkpoint(tmp_path / "c", params=P, step=step)


def test_whole_float_step_is_accepted(tmp_path):
    path = jn.save_checkpoint(tmp_path / "c", params=P, step=3.0)
    assert jn.load_checkpoint(path, params=P).step == 3


def test_checkpoint_without_step_is_a_checkpoint_error(tmp_path):
    path = jn.save_checkpoint(tmp_path / "c", params=P, step=1)
    meta, arrays = read_checkpoint(path)
    del arrays["step"]
    # rewrite it consistently (metadata and checksum) but without a step
    from jaxnet.train.checkpoint import checksum

    meta["entries"].pop("step")
    meta["checksum"] = checksum(arrays)
    import json

    np.savez(path, __metadata__=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    with pytest.raises(CheckpointError, match="no integer 'step' entry"):
        jn.load_checkpoint(path, params=P)


def _patch_zip(path, *, flag=None, method=None):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    for sig, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        i = data.find(sig)
        while i >= 0:
            if flag is not None:
                data[i + flag_at : i + flag_at + 2] = struct.pack("<H", flag)
            if method is not None:
                data[i + method_at : i + method_at + 2] = struct.pack("<H", method)
            i = data.find(sig, i + 4)
    with open(path, "wb") as f:
        f.write(bytes(data))


@pytest.mark.parametrize("patch", [{"method": 99}, {"flag": 1}], ids=["unsupported-compression", "encrypted"])
def test_zip_level_corruption_is_a_checkpoint_error(tmp_path, patch):
    path = jn.save_checkpoint(tmp_path / "c", params=P, step=1)
    _patch_zip(path, **patch)
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        jn.load_checkpoint(path, params=P)


def test_saves_reuse_one_temporary_name_and_leave_nothing_behind(tmp_path):
    target = tmp_path / "c.npz"
    for i in range(3):
        jn.save_checkpoint(target, params=P, step=i)
    assert sorted(os.listdir(tmp_path)) == ["c.npz"]
    # a stale temporary file (a killed save) is replaced by the next save, not joined by another
    with open(temporary_path(str(target)), "wb") as f:
        f.write(b"half a file")
    jn.save_checkpoint(target, params=P, step=9)
    assert sorted(os.listdir(tmp_path)) == ["c.npz"]
    assert jn.load_checkpoint(target, params=P).step == 9


def _saver(target: str, params) -> None:  # runs in the forked child until it is killed
    i = 0
    while True:
        jn.save_checkpoint(target, params=params, step=i)
        i += 1


def test_kill_during_save_never_breaks_the_target(tmp_path):
    """SIGKILL a process at random points while it saves: the target always loads, temp files never pile up."""
    rng = np.random.default_rng(0)
    params = {"w": np.asarray(rng.normal(size=(512, 512)), np.float32)}  # 1 MB: a save takes a few ms
    target = str(tmp_path / "ck.npz")
    jn.save_checkpoint(target, params=params, step=0)
    pick = random.Random(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jax warns that fork and threads mix badly: the child only writes files
        for _ in range(12):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child is killed
                try:
                    _saver(target, params)
                finally:
                    os._exit(0)
            time.sleep(pick.uniform(0.005, 0.15))
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            ck = jn.load_checkpoint(target, params=params)  # never a broken target
            np.testing.assert_array_equal(np.asarray(ck.params["w"]), params["w"])
            names = os.listdir(tmp_path)
            assert len(names) <= 2 and set(names) <= {"ck.npz", ".ck.npz.tmp"}, names


def test_fit_result_says_which_epoch_each_part_is_from():
    x, y = jn.data.circle(jax.random.PRNGKey(1), 120)
    r = jn.fit(
        jn.MLP([8, 2]),
        "softmax_cross_entropy_with_integer_labels",
        jn.sgd(2.0),
        (x, y),
        epochs=8,
        batch_size=10,
        key=jax.random.PRNGKey(0),
        validation=0.3,
        early_stopping=jn.train.EarlyStopping(patience=8, restore_best=True),
        progress=False,
    )
    assert r.params_epoch == r.history.best_epoch
    assert r.opt_state_epoch == r.epoch == 8
    assert r.consistent == (r.history.best_epoch == 8)
    # without early stopping (or restore_best=False) both parts are from the last epoch
    plain = jn.train.FitResult(r.params, r.state, r.opt_state, jn.train.History(), 2)
    assert plain.params_epoch == plain.opt_state_epoch == 2 and plain.consistent


def test_fit_resumes_from_a_checkpoint_history_dict(tmp_path):
    x, y = jn.data.circle(jax.random.PRNGKey(1), 100)
    model, opt = jn.MLP([8, 2]), jn.sgd(0.1)
    kw = dict(batch_size=10, key=jax.random.PRNGKey(0), validation=0.2, progress=False)
    es = jn.train.EarlyStopping(patience=50, restore_best=False)
    loss = "softmax_cross_entropy_with_integer_labels"
    r = jn.fit(model, loss, opt, (x, y), epochs=2, early_stopping=es, **kw)
    path = jn.save_checkpoint(
        tmp_path / "c", params=r.params, state=r.state, opt_state=r.opt_state, step=r.epoch, history=r.history
    )
    ck = jn.load_checkpoint(path, params=r.params, state=r.state, opt_state=r.opt_state)
    assert isinstance(ck.history, dict)
    r2 = jn.fit(
        model, loss, opt, (x, y), epochs=3, early_stopping=es, init=(ck.params, ck.state, ck.opt_state),
        initial_epoch=ck.step, history=ck.history, **kw,
    )  # fmt: skip
    assert [rec["epoch"] for rec in r2.history.records] == [1, 2, 3]
