"""Issue 13, items 7 and 10: smaller silent cases and internal exceptions turned into clear errors."""

import gzip
import re
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet as jn
from jaxnet import cli, optim
from jaxnet.data import idx

X = jnp.ones((8, 3))
Y = jnp.zeros((8,), jnp.int32)
LOSS = "softmax_cross_entropy_with_integer_labels"
KEY = jax.random.PRNGKey(0)


# --- item 7 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule, words",
    [
        (lambda t: -0.1 + 0.0 * t, r"got -0\.1\d* at step 0"),
        (lambda t: 0.1 - 0.01 * t, r"got -0\.\d+ at step 100"),  # negative only later
        (lambda t: jnp.where(t >= 1000, jnp.nan, 0.1), r"got nan at step 1000"),
        (lambda t: 1.0 / (1000 - t), r"got inf at step 1000"),
    ],
)
@pytest.mark.parametrize("make", [optim.sgd, optim.adam, optim.rmsprop, optim.adagrad])
def test_schedule_with_negative_or_non_finite_values_is_refused(make, schedule, words):
    with pytest.raises(ValueError, match=r"learning_rate must give finite values >= 0\.0, " + words):
        make(schedule)


def test_valid_schedules_still_work():
    opt = optim.sgd(optim.cosine_decay(0.1, 100))
    p = {"w": jnp.ones(2)}
    u, _ = opt.update(p, opt.init(p))
    np.testing.assert_allclose(np.asarray(u["w"]), -0.1)


@pytest.mark.parametrize(
    "layer, shape", [(jn.Dense(2), (2, 3)), (jn.Relu(), (2, 3)), (jn.BatchNorm(), (2, 3)), (jn.MLP([4, 2]), (2, 3))]
)
def test_complex_inputs_to_layers_raise(layer, shape):
    _, p, s = layer.init(KEY, (-1, shape[1]))
    with pytest.raises(TypeError, match=r"\.apply: the input must be real, got complex dtype complex64"):
        layer.apply(p, s, jnp.ones(shape, jnp.complex64), train=False)


def _write_idx(path, array, code):
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    big = array.astype(array.dtype.newbyteorder(">"))
    with gzip.open(path, "wb") if str(path).endswith(".gz") else open(path, "wb") as f:
        f.write(header + big.tobytes())


def test_float_idx_images_are_not_divided_by_255(tmp_path):
    images = np.random.default_rng(0).uniform(size=(3, 2, 2)).astype(np.float32)
    labels = np.array([0, 1, 2], np.uint8)
    for split in ("train", "test"):
        _write_idx(tmp_path / idx.MNIST_FILES[f"{split}_images"], images, 0x0D)
        _write_idx(tmp_path / idx.MNIST_FILES[f"{split}_labels"], labels, 0x08)
    (x, _), _ = jn.data.load_mnist(tmp_path)
    np.testing.assert_allclose(np.asarray(x), images, rtol=1e-7)
    uint = (images * 255).astype(np.uint8)
    for split in ("train", "test"):
        _write_idx(tmp_path / idx.MNIST_FILES[f"{split}_images"], uint, 0x08)
    (x, _), _ = jn.data.load_mnist(tmp_path)
    np.testing.assert_allclose(np.asarray(x), uint / 255.0, rtol=1e-6)


def test_idx_dimensions_whose_product_overflows_are_a_clear_error():
    data = struct.pack(">HBB", 0, 0x08, 3) + struct.pack(">3I", 2**31, 2**31, 8) + b"\0" * 16
    with pytest.raises(ValueError, match=r"truncated, shape \(2147483648, 2147483648, 8\).*needs \d+ data bytes"):
        jn.data.parse_idx(data)


def _cli(argv, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--patience", "-1"], r"argument --patience: must be >= 0, got -1"),
        (["--seed", str(2**32)], r"argument --seed: must be an int in \[0, 2\*\*32\)"),
        (["--seed", "-3"], r"argument --seed: must be an int in \[0, 2\*\*32\)"),
        (["--lr", "abc"], r"argument --lr: invalid float value: 'abc'"),
        (["--epochs", "two"], r"argument --epochs: invalid int value: 'two'"),
        (["--patience", "3", "--val", "0"], r"--patience 3 needs validation data.*--val is 0\.0"),
        (["--schedule", "exponential:abc"], r"--schedule exponential:RATE: expected a float number, got 'abc'"),
        (["--schedule", "warmup-cosine:x"], r"--schedule warmup-cosine:EPOCHS: expected a float number, got 'x'"),
    ],
)
def test_cli_errors_name_the_flag(argv, words, capsys, tmp_path):
    code, err = _cli(["train", "--data", "xor", "--no-plot", "--quiet", "--out", str(tmp_path), *argv], capsys)
    assert code == 2
    assert re.search(words, err), err
    assert "jaxnet train: error: jaxnet train:" not in err


def test_cli_out_naming_a_file_fails_before_training(capsys, tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    code, err = _cli(["train", "--data", "xor", "--no-plot", "--quiet", "--out", str(f)], capsys)
    assert code == 2
    assert "--out must be a directory, got the file" in err
    assert err.count("jaxnet train:") == 1


# --- item 10 ---------------------------------------------------------------------------------


def test_evaluate_batch_size_zero():
    _, p, s = jn.Dense(2).init(KEY, (-1, 3))
    with pytest.raises(ValueError, match="evaluate: batch_size must be a positive int, got 0"):
        jn.evaluate(jn.Dense(2), LOSS, p, s, (X, Y), batch_size=0)


@pytest.mark.parametrize(
    "kw, error, words",
    [
        ({"optimizer": "adam"}, TypeError, r"fit_ensemble: optimizer must be an Optimizer.*got 'adam' \(str\)"),
        ({"epochs_per_call": 0}, ValueError, r"fit_ensemble: epochs_per_call must be a positive int, got 0"),
        ({"eval_batch_size": 0}, ValueError, r"fit_ensemble: eval_batch_size must be a positive int, got 0"),
        ({"early_stopping": "val_loss"}, TypeError, r"fit_ensemble: early_stopping must be an EarlyStopping"),
    ],
)
def test_fit_ensemble_argument_errors(kw, error, words):
    args = {"optimizer": jn.sgd(0.1), **kw}
    opt = args.pop("optimizer")
    with pytest.raises(error, match=words):
        jn.fit_ensemble(jn.Dense(2), LOSS, opt, (X, Y), members=2, epochs=1, batch_size=4, key=KEY, **args)


@pytest.mark.parametrize(
    "kw, error, words",
    [
        ({"epochs_per_call": 0}, ValueError, r"fit: epochs_per_call must be a positive int, got 0"),
        ({"eval_batch_size": 0}, ValueError, r"fit: eval_batch_size must be a positive int, got 0"),
        ({"history": [1, 2]}, TypeError, r"fit: history must be a History or the dict a checkpoint stores"),
        ({"history": {"records": 3}}, ValueError, r"fit: history given as a dict"),
    ],
)
def test_fit_argument_errors(kw, error, words):
    with pytest.raises(error, match=words):
        jn.fit(jn.Dense(2), LOSS, jn.sgd(0.1), (X, Y), epochs=1, batch_size=4, key=KEY, progress=False, **kw)


def test_review_findings_get_clear_errors(tmp_path, capsys):
    """Bad inputs a fresh-user review found passing with internal messages or silently."""
    from jaxnet import nn, train
    from jaxnet.cli import main

    with pytest.raises(TypeError, match=r"metrics must be a mapping name -> metric"):
        train.fit(
            nn.MLP([3]),
            "mean_squared_error",
            optim.sgd(0.1),
            (jnp.ones((8, 2)), jnp.ones((8, 3))),
            epochs=1,
            batch_size=4,
            metrics=["accuracy"],
            progress=False,
            key=jax.random.PRNGKey(0),
        )
    not_zip = tmp_path / "notes.txt"
    not_zip.write_text("hello")
    with pytest.raises(train.CheckpointError, match=r"is not a jaxnet checkpoint"):
        train.read_checkpoint(not_zip)
    for argv, words in (
        (["--hidden", "10,,5"], "--hidden must be comma-separated ints"),
        (["--val", "1.5"], r"--val must be a fraction in \[0, 1\), got 1.5"),
    ):
        try:
            code = main(["train", "--data", "xor", *argv, "--out", str(tmp_path / "run")])
        except SystemExit as e:  # argparse's own exit for a flag it cannot parse
            code = e.code
        assert code == 2
        assert re.search(words, capsys.readouterr().err), argv


def test_fit_with_another_models_params_blames_the_params():
    from jaxnet import train

    m5, m2 = jn.MLP([8, 5]), jn.MLP([8, 2])
    _, p, s = m5.init(jax.random.PRNGKey(0), (-1, 4))
    opt = optim.sgd(0.1)
    data = (jnp.ones((8, 4)), jnp.zeros(8, jnp.int32))
    with pytest.raises(
        ValueError, match=r"fit: the params or state given \(init=\.\.\.\) are not this model's.*dense_2"
    ):
        train.fit(
            m2, "softmax_cross_entropy_with_integer_labels", opt, data,
            init=(p, s, opt.init(p)), epochs=1, batch_size=4, key=jax.random.PRNGKey(0), progress=False,
        )  # fmt: skip
