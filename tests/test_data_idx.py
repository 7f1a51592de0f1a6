"""The MNIST IDX format: exact round trips (plain and gzipped), load_mnist, and malformed files."""

import gzip
import os
import struct
import tempfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxnet.data as D

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_is_exact(tmp_path, dtype, suffix, rng):
    a = (rng.normal(size=(3, 4, 5)) * 100).astype(dtype)
    path = tmp_path / f"a.idx{suffix}"
    D.write_idx(path, a)
    b = D.read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(0, 4), min_size=1, max_size=4),
    code=st.sampled_from(range(len(DTYPES))),
    seed=st.integers(0, 2**16),
)
def test_round_trip_any_shape_in_memory(shape, code, seed):
    a = np.random.default_rng(seed).integers(-100, 100, size=shape).astype(DTYPES[code])
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "x.gz")
        D.write_idx(path, a)
        np.testing.assert_array_equal(D.read_idx(path), a)


def test_header_layout_is_the_standard_one(tmp_path):
    path = tmp_path / "labels"
    D.write_idx(path, np.array([7, 2, 1], np.uint8))
    assert path.read_bytes() == bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 2, 1])
    D.write_idx(path, np.array([1.5], np.float32))
    assert path.read_bytes()[:4] == bytes([0, 0, 0x0D, 1]) and path.read_bytes()[8:] == struct.pack(">f", 1.5)


def test_wrong_magic_truncated_and_overlong_files_raise(tmp_path):
    good = bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(6))
    cases = {
        "wrong magic number": b"\x01\x02" + good[2:],
        "wrong magic number 0x00000f": bytes([0, 0, 0x0F, 2]) + good[4:],
        "truncated header": good[:9],
        r"truncated, shape \(2, 3\)": good[:-1],
        "bytes beyond": good + b"\x00",
    }
    for message, data in cases.items():
        path = tmp_path / "bad"
        path.write_bytes(data)
        with pytest.raises(ValueError, match=message):
            D.read_idx(path)
    gz = tmp_path / "bad.gz"
    gz.write_bytes(gzip.compress(good)[:-6])  # cut inside the gzip stream
    with pytest.raises(ValueError, match=r"bad\.gz"):
        D.read_idx(gz)


def test_write_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(TypeError, match="IDX cannot store dtype int64"):
        D.write_idx(tmp_path / "x", np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="1 to 255 dimensions"):
        D.write_idx(tmp_path / "x", np.float32(1.0))


def _fake_mnist(directory, n_train=6, n_test=4, gz=False, labels_train=None):
    rng = np.random.default_rng(0)
    s = ".gz" if gz else ""
    files = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)).astype(np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, labels_train or n_train).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)).astype(np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test).astype(np.uint8),
    }
    for name, a in files.items():
        D.write_idx(directory / (name + s), a)
    return files


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_reads_the_four_files(tmp_path, gz):
    files = _fake_mnist(tmp_path, gz=gz)
    (xtr, _ytr), (xte, yte) = D.load_mnist(tmp_path)
    assert xtr.shape == (6, 28, 28) and xte.shape == (4, 28, 28) and str(xtr.dtype) == "float32"
    np.testing.assert_allclose(xtr, files["train-images-idx3-ubyte"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(yte, files["t10k-labels-idx1-ubyte"])
    (xf, _), _ = D.load_mnist(tmp_path, flatten=True)
    assert xf.shape == (6, 784)


def test_load_mnist_count_mismatch_and_missing_files(tmp_path):
    _fake_mnist(tmp_path, labels_train=5)
    with pytest.raises(ValueError, match=r"holds 5 labels but .* holds 6 images"):
        D.load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="no train-images-idx3-ubyte file"):
        D.load_mnist(tmp_path / "nowhere")
