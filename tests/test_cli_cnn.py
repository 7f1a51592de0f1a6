"""`jaxnet train --model cnn`: trains the CNN on the digits, evaluate reproduces it, non-image data is refused."""

import json
import re

from jaxnet import cli


def _accuracy(text):
    return float(re.search(r"^test accuracy: ([0-9.]+)", text, re.M).group(1))


def test_train_cnn_on_digits_and_evaluate_round_trip(tmp_path, capsys):
    out = tmp_path / "cnn"
    args = ["train", "--model", "cnn", "--data", "digits", "--epochs", "2", "--lr", "3e-3", "--quiet", "--no-plot"]
    assert cli.main([*args, "--dropout", "0.1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    hist = json.loads((out / "history.json").read_text())
    assert hist["settings"]["model"] == "cnn"
    # Two epochs of a CNN already beat chance (0.1) by far on the 360 held-out digits.
    assert 0.7 < hist["test_accuracy"] <= 1.0
    assert cli.main(["evaluate", str(out)]) == 0
    assert _accuracy(capsys.readouterr().out) == _accuracy(printed)


def test_cnn_needs_image_data(tmp_path, capsys):
    assert (
        cli.main(["train", "--model", "cnn", "--data", "circle", "--quiet", "--no-plot", "--out", str(tmp_path)]) == 2
    )
    assert "--model cnn needs image data" in capsys.readouterr().err


def test_cnn_model_shapes():
    import jax

    model = cli.build_model({"model": "cnn", "activation": "relu", "dropout": 0.0, "data": "digits"}, 10, (8, 8))
    out_shape, params, _ = model.init(jax.random.PRNGKey(0), (-1, 64))
    assert out_shape == (-1, 10)
    assert params["conv_1"]["w"].shape == (3, 3, 1, 32) and params["conv_5"]["w"].shape == (3, 3, 32, 64)
