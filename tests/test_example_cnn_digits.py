"""examples/cnn_digits.py: the CNN reaches 99% test accuracy on the CLI's digits split (median of 3 seeds)."""

import importlib.util
import pathlib
import time

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _load():
    spec = importlib.util.spec_from_file_location("cnn_digits", EXAMPLES / "cnn_digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_digits_split_is_the_clis():
    from jaxnet import cli

    module = _load()
    (x, _y), (xt, yt) = module.digits_split()
    _, _, test, _ = cli.load_data({"data": "digits", "split_seed": 0, "val": 0.1, "test": 0.2, "normalize": "none"})
    assert x.shape[1:] == (8, 8, 1) and x.shape[0] + xt.shape[0] == 1797
    assert (xt.reshape(len(xt), -1) == test[0]).all() and (yt == test[1]).all()


@pytest.mark.slow
def test_cnn_reaches_99_percent_on_the_digits(capsys):
    t0 = time.perf_counter()
    median = _load().main((0, 1, 2))
    seconds = time.perf_counter() - t0
    with capsys.disabled():
        print(f"\ncnn_digits: median test accuracy {median:.4f} over 3 seeds in {seconds:.0f} s")
    assert median >= 0.99
