"""Weights in the safetensors format: the file layout Hugging Face, PyTorch and Flax users exchange.

A safetensors file is an 8-byte header length, a JSON header naming every tensor with its
dtype, shape and byte range, then the raw little-endian bytes. Reading it runs no code (unlike
a pickled ``torch.save`` file), and any framework can read it.

jaxnet stores a params (or state) pytree under flat dotted names, one entry per leaf:
``{"dense_0": {"w": ..., "b": ...}}`` becomes ``dense_0.w`` and ``dense_0.b``. Arrays keep their
dtype bit for bit (float32, float64, bfloat16, float16, integers, bool). The ``safetensors``
package is an optional dependency: ``pip install 'jaxnet[safetensors]'``.

:func:`from_torch_names` maps the ``state_dict`` of a PyTorch ``nn.Sequential`` MLP (saved with
``safetensors.torch.save_file``) onto a jaxnet :func:`~jaxnet.nn.MLP` built with the same layer
sequence: a torch module at position ``i`` is jaxnet's layer ``<kind>_<i>``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet._version import __version__

_EXTRA_HINT = "install it with: pip install 'jaxnet[safetensors]' (or pip install safetensors)"
# Little-endian dtypes the safetensors header can name and jax can hold; bfloat16 comes from ml_dtypes
# (a jax dependency), so it is compared by name.
_SUPPORTED = (
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "bfloat16",
    "float32",
    "float64",
)


def _safetensors():
    """Import the optional ``safetensors`` package, or say which extra brings it."""
    try:
        import safetensors
        import safetensors.numpy
    except ImportError:
        raise ImportError(f"jaxnet's safetensors support needs the 'safetensors' package; {_EXTRA_HINT}") from None
    return safetensors


def _key_str(entry) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def flat_names(tree: Any, *, where: str = "save_safetensors") -> dict[str, Any]:
    """``{"dense_0.w": leaf, ...}``: every leaf of ``tree`` under its dotted path.

    Args:
      tree: a pytree of arrays (dicts, lists, tuples, NamedTuples).
      where: the caller's name, for error messages.

    Returns:
      A dict from dotted name to leaf, in the tree's flattening order.

    Raises:
      ValueError: for a key that contains a dot or is empty (the name would be ambiguous),
        for two leaves with the same name, or for a leaf at the root (it would have no name).
    """
    out: dict[str, Any] = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        parts = [_key_str(p) for p in path]
        for part in parts:
            if part == "" or "." in part:
                raise ValueError(
                    f"{where}: the key {part!r} in {parts} cannot be part of a dotted name; "
                    "rename it (no dots, not empty)"
                )
        if not parts:
            raise ValueError(f"{where}: expected a dict of arrays, got a single array; wrap it: {{'w': array}}")
        name = ".".join(parts)
        if name in out:
            raise ValueError(f"{where}: two leaves share the name {name!r}")
        out[name] = leaf
    return out


def _to_numpy(name: str, leaf, where: str) -> np.ndarray:
    a = np.asarray(leaf, order="C")  # (np.ascontiguousarray would turn a scalar into shape [1])
    if a.dtype.name not in _SUPPORTED:
        raise TypeError(f"{where}: {name!r} has dtype {a.dtype}; safetensors files hold {', '.join(_SUPPORTED)}")
    return a


def save_safetensors(path: str | os.PathLike, params: Any, *, metadata: Mapping[str, str] | None = None) -> str:
    """Write the arrays of ``params`` to a safetensors file under flat dotted names; return the path.

    The file is written to a temporary file in the same directory and renamed over ``path``
    (atomic), so a crash leaves the old file or the new one. Nothing is pickled.

    Args:
      path: the file to write (conventionally ending in ``.safetensors``).
      params: a pytree of arrays, e.g. a model's params or state; leaf ``params["dense_0"]["w"]``
        is stored as ``dense_0.w`` with its dtype and shape unchanged.
      metadata: extra ``str -> str`` entries for the file header (``format`` and
        ``jaxnet_version`` are added unless given).

    Returns:
      ``path`` as a string.

    Raises:
      ImportError: when the ``safetensors`` package is missing (names the extra).
      ValueError: for names that cannot be dotted (see ``flat_names``).
      TypeError: for a leaf whose dtype safetensors cannot hold, or non-string metadata.
    """
    st = _safetensors()
    where = "save_safetensors"
    path = os.fspath(path)
    arrays = {name: _to_numpy(name, leaf, where) for name, leaf in flat_names(params, where=where).items()}
    meta = {"format": "jax", "jaxnet_version": __version__}
    for k, v in (metadata or {}).items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"{where}: metadata must map str to str, got {k!r}: {v!r}")
        meta[k] = v
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=directory)
    os.close(fd)
    try:
        st.numpy.save_file(arrays, tmp, metadata=meta)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read every tensor of a safetensors file: ``({name: numpy array}, header metadata)``.

    Works for any safetensors file (written by jaxnet, ``safetensors.torch``, Flax...);
    bfloat16 tensors come back as ``ml_dtypes.bfloat16`` arrays.

    Raises:
      ImportError: when the ``safetensors`` package is missing (names the extra).
      FileNotFoundError: when there is no file at ``path``.
      ValueError: for a file that is not a valid safetensors file (truncated, another format).
    """
    st = _safetensors()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"read_safetensors: no file at {path!r}")
    try:
        with st.safe_open(path, framework="numpy") as f:
            metadata = dict(f.metadata() or {})
            arrays = {name: np.array(f.get_tensor(name)) for name in f.keys()}  # noqa: SIM118 (not a dict)
    except (st.SafetensorError, OSError, ValueError, TypeError, KeyError) as e:
        raise ValueError(f"read_safetensors: {path!r} is not a valid safetensors file ({e})") from None
    return arrays, metadata


def _describe(a) -> str:
    return f"{np.dtype(a.dtype).name}{list(np.shape(a))}"


def _differences(arrays: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    out = []
    for name in sorted(set(arrays) | set(expected)):
        if name not in arrays:
            out.append(f"{name!r} is missing from the file (expected {_describe(expected[name])})")
        elif name not in expected:
            out.append(f"the file has {name!r} ({_describe(arrays[name])}), which the template lacks")
        else:
            a, e = arrays[name], expected[name]
            if tuple(np.shape(a)) != tuple(np.shape(e)) or np.dtype(a.dtype) != np.dtype(e.dtype):
                out.append(f"{name!r} is {_describe(a)} in the file, {_describe(e)} in the template")
    return out


def _check_x64(path: str, arrays: Mapping[str, np.ndarray]) -> None:
    if jax.config.jax_enable_x64:  # type: ignore[attr-defined]  # a config flag jax reads at run time
        return
    wide = sorted(n for n, a in arrays.items() if a.dtype.itemsize == 8)
    if wide:
        raise ValueError(
            f"load_safetensors: {path!r} holds 64-bit arrays ({', '.join(wide[:3])}"
            f"{', ...' if len(wide) > 3 else ''}), which jax would silently narrow to 32 bits; enable them with "
            "jax.config.update('jax_enable_x64', True), or cast with read_safetensors"
        )


def _nest(arrays: Mapping[str, Any]) -> dict:
    tree: dict = {}
    for name, a in arrays.items():
        *parents, last = name.split(".")
        node = tree
        for i, part in enumerate(parents):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"load_safetensors: {'.'.join(parents[: i + 1])!r} is both an array and a prefix")
        if last in node:
            raise ValueError(f"load_safetensors: {name!r} is both an array and a prefix")
        node[last] = a
    return tree


def load_safetensors(path: str | os.PathLike, like: Any = None) -> Any:
    """Load a safetensors file as a params pytree of jax arrays, bit for bit.

    Args:
      path: a safetensors file, e.g. one written by :func:`save_safetensors`.
      like: optional template (e.g. the params a model's ``init`` returns; values ignored).
        With it, the file must hold exactly the template's dotted names with the same
        shapes and dtypes, and the result has the template's structure (including empty
        subtrees such as ``{"relu_1": {}}``). Without it, dotted names become nested dicts.

    Returns:
      The pytree of ``jax.Array`` leaves.

    Raises:
      ImportError: when the ``safetensors`` package is missing (names the extra).
      FileNotFoundError: when there is no file at ``path``.
      ValueError: for a file that is not safetensors; for 64-bit arrays while
        ``jax_enable_x64`` is off; with ``like``, naming every name, shape or dtype that differs.
    """
    path = os.fspath(path)
    arrays, _ = read_safetensors(path)
    if like is None:
        _check_x64(path, arrays)
        return _nest({n: jnp.asarray(a) for n, a in arrays.items()})
    expected = flat_names(like, where="load_safetensors like")
    expected = {n: np.asarray(leaf) if not hasattr(leaf, "dtype") else leaf for n, leaf in expected.items()}
    diffs = _differences(arrays, expected)
    if diffs:
        raise ValueError(
            f"load_safetensors: {path!r} does not match the template: "
            + "; ".join(diffs[:10])
            + (f"; and {len(diffs) - 10} more" if len(diffs) > 10 else "")
        )
    _check_x64(path, arrays)
    treedef = jax.tree_util.tree_structure(like)
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(arrays[n]) for n in expected])
