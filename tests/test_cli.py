"""The jaxnet command: --help, train/evaluate round trip, errors, and the make-demo accuracy on the digits."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxnet import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _accuracy(text):
    return float(re.search(r"^test accuracy: ([0-9.]+)", text, re.M).group(1))  # not the members' line


def test_help_documents_every_flag():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        text = p.format_help()
        for action in p._actions:
            if action.dest == "help":
                continue
            assert action.help and len(action.help) > 10, (name, action.dest)
            for opt in action.option_strings:
                assert opt in text, (name, opt)
    out = subprocess.run(
        [sys.executable, "-m", "jaxnet.cli", "train", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, COLUMNS="200"),
    )
    assert out.returncode == 0 and "--batch-size" in out.stdout and "mnist-idx:PATH" in out.stdout


def test_train_writes_outputs_and_evaluate_reproduces_the_accuracy(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(
        [
            "train",
            "--data",
            "circle",
            "--samples",
            "600",
            "--hidden",
            "16",
            "--epochs",
            "3",
            "--batch-size",
            "20",
            "--lr",
            "3e-3",
            "--seed",
            "1",
            "--quiet",
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert sorted(os.listdir(out)) == ["checkpoint.npz", "history.json", "learning_curve.png"]
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    hist = json.loads((out / "history.json").read_text())
    records = hist["histories"][0]["records"]
    assert [r["epoch"] for r in records] == [1, 2, 3] and {"loss", "val_loss", "val_accuracy"} <= set(records[0])
    assert hist["settings"]["hidden"] == [16] and hist["test_accuracy"] == pytest.approx(_accuracy(printed), abs=1e-4)
    assert 0.5 < hist["test_accuracy"] <= 1.0
    assert cli.main(["evaluate", str(out)]) == 0
    assert _accuracy(capsys.readouterr().out) == _accuracy(printed)


def test_ensemble_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "ens"
    assert (
        cli.main(
            [
                "train",
                "--data",
                "spirals",
                "--samples",
                "400",
                "--hidden",
                "16",
                "--epochs",
                "2",
                "--ensemble",
                "3",
                "--quiet",
                "--no-plot",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "members' test accuracy" in printed and "ensemble gain" in printed
    assert cli.main(["evaluate", str(out / "checkpoint.npz")]) == 0
    assert _accuracy(capsys.readouterr().out) == _accuracy(printed)


def test_errors_are_reported_not_raised(tmp_path, capsys):
    assert cli.main(["train", "--data", "cifar", "--out", str(tmp_path)]) == 2
    assert "--data must be digits, circle, xor, spirals or mnist-idx:PATH, got 'cifar'" in capsys.readouterr().err
    assert cli.main(["train", "--data", "circle", "--augment", "rotation:0.1", "--out", str(tmp_path)]) == 2
    assert "--augment needs image data" in capsys.readouterr().err
    assert cli.main(["train", "--data", "circle", "--schedule", "sawtooth", "--out", str(tmp_path)]) == 2
    assert "unknown --schedule 'sawtooth'" in capsys.readouterr().err
    assert cli.main(["evaluate", str(tmp_path / "nothing.npz")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "--hidden", "256,x"])
    assert "--hidden must be comma-separated ints" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "--epochs", "0"])
    assert "must be > 0, got 0" in capsys.readouterr().err


def _demo_args():
    text = Path(ROOT, "Makefile").read_text().replace("\\\n", " ")
    args = shlex.split(re.search(r"^DEMO_ARGS\s*:=(.*)$", text, re.M).group(1))
    target = re.search(r"^demo:.*\n((?:\t.*\n)+)", text, re.M).group(1)
    assert "jaxnet train $(DEMO_ARGS)" in target  # make demo really runs these settings
    return args


@pytest.mark.slow
def test_make_demo_defaults_reach_98_percent_on_digits(tmp_path):
    args = _demo_args()
    assert args[args.index("--data") + 1] == "digits"
    base = [a for i, a in enumerate(args) if a != "--seed" and (i == 0 or args[i - 1] != "--seed")]
    accs = []
    for seed in range(3):
        parsed = cli.build_parser().parse_args(
            ["train", *base, "--seed", str(seed), "--quiet", "--no-plot", "--out", str(tmp_path / str(seed))]
        )
        accs.append(cli.train(parsed)["test_accuracy"])
    assert float(np.median(accs)) >= 0.98, accs
