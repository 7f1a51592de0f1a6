"""The IDX file format of MNIST: a reader, a writer and ``load_mnist`` for files you already have.

Layout: two zero bytes, a type byte, the number of dimensions ``k``, then ``k`` big-endian
uint32 sizes, then the values in row-major order, big-endian. Type bytes: ``0x08`` uint8,
``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64.
A path ending in ``.gz`` is read and written through gzip. Nothing is downloaded.
"""

from __future__ import annotations

import gzip
import math
import os
import struct

import numpy as np
from jax.typing import ArrayLike, DTypeLike

from jaxnet.types import Array

_CODES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_BY_KIND = {(d.kind, d.itemsize): code for code, d in _CODES.items()}

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _open(path, mode):
    path = os.fspath(path)
    return gzip.open(path, mode) if path.endswith(".gz") else open(path, mode)


def parse_idx(data: bytes, *, name: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of an IDX file into a NumPy array of native byte order.

    Raises:
      ValueError: for a wrong magic number, an unknown type byte, or a truncated or over-long body.
    """
    if len(data) < 4:
        raise ValueError(f"IDX file {name}: truncated, only {len(data)} bytes where the 4-byte magic number belongs")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in _CODES:
        raise ValueError(
            f"IDX file {name}: wrong magic number 0x{data[:4].hex()}; expected 0x0000 followed by a "
            f"type byte in {{{', '.join(f'0x{c:02X}' for c in _CODES)}}} and the dimension count"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"IDX file {name}: truncated header, {ndim} dimensions need {header} bytes, got {len(data)}")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _CODES[code]
    expected = math.prod(shape) * dtype.itemsize  # exact: a fixed-width product of large sizes would wrap
    body = len(data) - header
    if body < expected:
        raise ValueError(
            f"IDX file {name}: truncated, shape {shape} of {dtype.newbyteorder('=')} needs "
            f"{expected} data bytes, found {body}"
        )
    if body > expected:
        raise ValueError(f"IDX file {name}: {body - expected} bytes beyond the {expected} that shape {shape} needs")
    array = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    return array.reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (gzipped when the name ends in ``.gz``) into a NumPy array.

    Raises:
      FileNotFoundError: when ``path`` does not exist.
      ValueError: for a wrong magic number or a truncated file (including a truncated gzip stream).
    """
    try:
        with _open(path, "rb") as f:
            data = f.read()
    except (EOFError, gzip.BadGzipFile) as e:
        raise ValueError(f"IDX file {os.fspath(path)}: damaged or truncated gzip stream ({e})") from e
    return parse_idx(data, name=os.fspath(path))


def write_idx(path: str | os.PathLike[str], array: ArrayLike) -> None:
    """Write ``array`` as an IDX file (gzipped when the name ends in ``.gz``); read_idx gives it back exactly.

    Raises:
      TypeError: for a dtype IDX cannot hold (it holds uint8, int8, int16, int32, float32, float64).
      ValueError: for a 0-d array, more than 255 dimensions, or a size beyond 2^32 - 1.
    """
    a = np.asarray(array)
    code = _BY_KIND.get((a.dtype.kind, a.dtype.itemsize))
    if code is None:
        raise TypeError(
            f"write_idx: IDX cannot store dtype {a.dtype}; use uint8, int8, int16, int32, float32 or float64"
        )
    if not 1 <= a.ndim <= 255:
        raise ValueError(f"write_idx: IDX needs 1 to 255 dimensions, got an array of shape {a.shape}")
    if any(s >= 2**32 for s in a.shape):
        raise ValueError(f"write_idx: every size must be < 2^32, got shape {a.shape}")
    header = struct.pack(f">HBB{a.ndim}I", 0, code, a.ndim, *a.shape)
    with _open(path, "wb") as f:
        f.write(header)
        f.write(np.ascontiguousarray(a, dtype=_CODES[code]).tobytes())


def _find(directory: str, stem: str) -> str:
    # Mirrors ship the names with "-idx" or ".idx", plain or gzipped.
    candidates = [stem, stem.replace("-idx", ".idx")]
    for name in candidates:
        for suffix in ("", ".gz"):
            path = os.path.join(directory, name + suffix)
            if os.path.isfile(path):
                return path
    tried = ", ".join(c + s for c in candidates for s in ("", ".gz"))
    raise FileNotFoundError(
        f"load_mnist: no {stem} file in {directory!r} (tried {tried}); "
        "jaxnet does not download data, place the four MNIST files there"
    )


def load_mnist(
    directory: str | os.PathLike[str], *, flatten: bool = False, dtype: DTypeLike = np.float32
) -> tuple[tuple[Array, Array], tuple[Array, Array]]:
    """Load MNIST from the four standard IDX files in ``directory`` (plain or ``.gz``).

    Integer pixels (uint8 0..255) are scaled to ``[0, 1]``; images stored as floats are
    returned as stored (not divided by 255).

    Args:
      directory: folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each may end in ``.gz``).
      flatten: give images as [N, 784] instead of [N, 28, 28].
      dtype: floating dtype of the images.

    Returns:
      ``((x_train, y_train), (x_test, y_test))`` as jax arrays; labels int32.

    Raises:
      FileNotFoundError: when a file is missing.
      ValueError: for a malformed file, or a label file whose count differs from its image file.
    """
    import jax.numpy as jnp

    directory = os.fspath(directory)
    out = []
    for split in ("train", "test"):
        images_path = _find(directory, MNIST_FILES[f"{split}_images"])
        labels_path = _find(directory, MNIST_FILES[f"{split}_labels"])
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3:
            raise ValueError(f"load_mnist: {images_path} should hold images [N, H, W], got shape {images.shape}")
        if labels.ndim != 1:
            raise ValueError(f"load_mnist: {labels_path} should hold labels [N], got shape {labels.shape}")
        if labels.shape[0] != images.shape[0]:
            raise ValueError(
                f"load_mnist: {labels_path} holds {labels.shape[0]} labels but {images_path} "
                f"holds {images.shape[0]} images"
            )
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"load_mnist: {labels_path} should hold integer labels, got dtype {labels.dtype}")
        # only integer pixels (0..255) are scaled; float images are taken as they are stored
        x = images.astype(np.float64) / 255.0 if np.issubdtype(images.dtype, np.integer) else images.astype(np.float64)
        if flatten:
            x = x.reshape(x.shape[0], -1)
        out.append((jnp.asarray(x, dtype=dtype), jnp.asarray(labels, dtype=jnp.int32)))
    return out[0], out[1]
