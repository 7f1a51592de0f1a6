"""Checkpoints: one ``.npz`` file holding every array plus a JSON metadata record.

Layout: each array of ``params``, ``state`` and ``opt_state`` is stored under its tree
path (``"params/dense_0/w"``, ``"opt_state/count"``...), plus ``"step"`` and ``"key"``;
the entry ``"__metadata__"`` holds UTF-8 JSON bytes with the format version, every
stored path with its shape and dtype, a SHA-256 checksum over names, dtypes, shapes
and bytes, the training history and a free-form ``config`` (the CLI keeps its model
and data settings there). Nothing is pickled: files are read with
``allow_pickle=False``, so loading never executes code.

Restoring needs templates (``like``): the trees that the same model and optimizer
build with ``init``. The stored paths, shapes and dtypes must match them exactly; the
first difference is named in the error.

Crash safety: a checkpoint is written to ONE temporary file per target in the same
directory (``.<name>.npz.tmp``, which the next save to that target truncates and reuses),
flushed and fsynced, renamed over the target (``os.replace`` is atomic) and the directory
is fsynced so that the rename itself survives a power loss. A process killed at any point
leaves the old checkpoint or the new one, never half a file, and at most one temporary
file per target (two processes saving to the same target at once is not supported).

Dtypes: bool, integers and floats, bfloat16 included (stored as its raw 16 bits with the
dtype in the metadata, so it loads back bit for bit). A typed key (``jax.random.key``,
any implementation) loads back as a typed key of the same implementation; a raw
``PRNGKey`` as a raw key.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import zipfile
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.train.history import History
from jaxnet.types import Array, OptState, Params, State, check_key

#: The checkpoint format :func:`save_checkpoint` writes; older versions still load.
FORMAT_VERSION = 2
# Version 2 stores an optimizer's hyperparameters as one array ("opt_state/hyper/learning_rate,b1,...");
# version 1 stored one array per hyperparameter. Params and state are laid out alike in both.
_FIRST_PACKED_VERSION = 2
_META = "__metadata__"
_GROUPS = ("params", "state", "opt_state")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not match what it is restored into."""


class Checkpoint(NamedTuple):
    """A restored checkpoint: trees shaped like the templates, plus step, key, history and config."""

    params: Any
    state: Any
    opt_state: Any
    step: int
    key: Any
    history: dict | None
    config: dict


def _path_name(path) -> str:
    parts = []
    for p in path:
        for attr in ("key", "name", "idx"):
            if hasattr(p, attr):
                parts.append(str(getattr(p, attr)))
                break
        else:
            parts.append(str(p))
    return "/".join(parts)


def flatten(group: str, tree: Any) -> dict[str, np.ndarray]:
    """``{"group/path/to/leaf": numpy array}`` for every leaf of ``tree``."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    out = {}
    for path, leaf in leaves:
        name = "/".join(filter(None, [group, _path_name(path)]))
        if name in out:
            raise CheckpointError(f"checkpoint: two leaves share the path {name!r}")
        out[name] = np.asarray(leaf)
    return out


def _key_data(key):
    """``(raw key data, implementation name or None for a raw key)``."""
    if key is None:
        return None, None
    check_key("save_checkpoint", key)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(key)), str(jax.random.key_impl(key))
    return np.asarray(key), None


# dtypes numpy's .npz holds only as opaque void records: stored as raw bits, their name in the metadata
_BITS = {"bfloat16": np.uint16}


def _to_storable(name: str, a: np.ndarray) -> tuple[np.ndarray, str | None]:
    """``(array .npz stores without pickle, the original dtype's name when stored as bits)``."""
    dname = str(a.dtype)
    if dname in _BITS:
        return a.view(_BITS[dname]), dname
    if a.dtype.kind not in "biuf" or a.dtype.hasobject:
        raise CheckpointError(f"save_checkpoint: {name} has dtype {a.dtype}, which .npz cannot store without pickle")
    return a, None


def _from_storable(a: np.ndarray, dname: str | None) -> np.ndarray:
    if dname is None:
        return a
    import ml_dtypes  # jax's own dependency: it defines bfloat16 for numpy

    return a.view(getattr(ml_dtypes, dname))


def _fsync_directory(directory: str) -> None:
    """Make a rename in ``directory`` durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temporary_path(path: str) -> str:
    """The one temporary file a save to ``path`` writes before renaming it over ``path``."""
    directory, base = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{base}.tmp")


def checksum(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over each entry's name, dtype, shape and bytes, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    params: Params,
    state: State | None = None,
    opt_state: OptState | None = None,
    step: int = 0,
    key: Array | None = None,
    history: History | dict | None = None,
    config: dict | None = None,
) -> str:
    """Write a checkpoint atomically to ``path`` (``.npz`` is appended when missing); return the path.

    Args:
      params, state, opt_state: pytrees of arrays (opt_state: NamedTuples of arrays);
        bool, integer and float dtypes, bfloat16 included.
      step: the number of completed epochs (or steps): an int >= 0, stored as an int64.
      key: the run's ``jax.random`` key (raw, or typed of any implementation).
      history: a :class:`~jaxnet.train.history.History` or a JSON-able dict.
      config: JSON-able settings to keep with the arrays (e.g. how to rebuild the model).

    Raises:
      CheckpointError/TypeError: for a dtype ``.npz`` cannot hold without pickling, or
        history/config that are not JSON-serializable.
      TypeError/ValueError: for a ``step`` that is not a whole number >= 0, or a bad ``key``.
      IsADirectoryError: when ``path`` names a directory (rather than writing ``DIR.npz`` beside it).
    """
    if isinstance(step, bool) or not isinstance(step, (numbers.Integral, np.integer)):
        if isinstance(step, (float, np.floating)) and float(step).is_integer():
            step = int(step)
        else:
            raise TypeError(f"save_checkpoint: step must be an int (completed epochs or steps), got {step!r}")
    if step < 0:
        raise ValueError(f"save_checkpoint: step must be >= 0, got {step}")
    path = os.fspath(path)
    if os.path.isdir(path) or path.endswith(("/", os.sep)):
        raise IsADirectoryError(f"save_checkpoint: {path!r} is a directory; give a file name, e.g. {path!r}/ckpt.npz")
    if not path.endswith(".npz"):
        path += ".npz"
    arrays: dict[str, np.ndarray] = {}
    for group, tree in zip(_GROUPS, (params, state, opt_state), strict=True):
        arrays.update(flatten(group, tree if tree is not None else {}))
    arrays["step"] = np.asarray(int(step), np.int64)
    kd, impl = _key_data(key)
    if kd is not None:
        arrays["key"] = kd
    stored_as = {}
    for name in list(arrays):
        arrays[name], dname = _to_storable(name, arrays[name])
        if dname is not None:
            stored_as[name] = dname
    if history is not None and hasattr(history, "to_dict"):
        history = history.to_dict()
    meta = {
        "format": "jaxnet-checkpoint",
        "format_version": FORMAT_VERSION,
        "entries": {
            n: {"shape": list(a.shape), "dtype": a.dtype.str, **({"as": stored_as[n]} if n in stored_as else {})}
            for n, a in sorted(arrays.items())
        },
        "key_impl": impl,
        "checksum": checksum(arrays),
        "history": history,
        "config": config or {},
    }
    try:
        meta_bytes = json.dumps(meta, allow_nan=True).encode()
    except TypeError as e:
        raise TypeError(f"save_checkpoint: history and config must be JSON-serializable: {e}") from None
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(f"save_checkpoint: {path!r} is a directory; give a file name")
    os.makedirs(directory, exist_ok=True)
    # One temporary name per target: a save killed mid-write leaves this file, and the next
    # save to the same target truncates and reuses it, so killed saves never pile up.
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as f:
            members: dict[str, Any] = {_META: np.frombuffer(meta_bytes, np.uint8), **arrays}
            np.savez(f, **members)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_directory(directory)
    return path


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict, dict[str, np.ndarray]]:
    """Read and verify a checkpoint: ``(metadata, {path: array})``.

    Raises:
      FileNotFoundError: when there is no such file.
      CheckpointError: for a truncated or corrupted file, a checksum mismatch, a file that
        is not a jaxnet checkpoint, or one written in a newer format version.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"read_checkpoint: no checkpoint at {path!r}")
    with open(path, "rb") as f:
        head = f.read(4)
    if head != b"PK\x03\x04":  # not even the start of a zip archive (a truncated one still starts so)
        raise CheckpointError(
            f"read_checkpoint: {path!r} is not a jaxnet checkpoint (a .npz zip archive written by save_checkpoint)"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, NotImplementedError, RuntimeError) as e:
        # RuntimeError / NotImplementedError: zip entries flagged encrypted or with a compression zipfile lacks
        raise CheckpointError(
            f"read_checkpoint: {path!r} is truncated or corrupted ({type(e).__name__}: {e})"
        ) from None
    if _META not in arrays:
        raise CheckpointError(f"read_checkpoint: {path!r} is not a jaxnet checkpoint (no {_META} record)")
    try:
        meta = json.loads(arrays.pop(_META).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"read_checkpoint: {path!r} has a corrupted metadata record: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != "jaxnet-checkpoint":
        raise CheckpointError(f"read_checkpoint: {path!r} is not a jaxnet checkpoint")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"read_checkpoint: {path!r} has format version {version!r}, newer than this "
            f"jaxnet reads ({FORMAT_VERSION}); upgrade jaxnet"
        )
    entries = meta.get("entries", {})
    if set(entries) != set(arrays):
        missing = sorted(set(entries) ^ set(arrays))
        raise CheckpointError(
            f"read_checkpoint: {path!r} is corrupted: entries {missing[:3]} disagree with its metadata"
        )
    if checksum(arrays) != meta.get("checksum"):
        raise CheckpointError(f"read_checkpoint: {path!r} is corrupted: checksum mismatch")
    if "step" not in arrays or arrays["step"].shape != () or arrays["step"].dtype.kind not in "iu":
        raise CheckpointError(f"read_checkpoint: {path!r} has no integer 'step' entry; it is not a complete checkpoint")
    for name, info in entries.items():
        if isinstance(info, dict) and info.get("as"):
            if info["as"] not in _BITS:
                raise CheckpointError(f"read_checkpoint: {path!r} stores {name!r} as unknown dtype {info['as']!r}")
            arrays[name] = _from_storable(arrays[name], info["as"])
    return meta, arrays


def _restore(group: str, like, arrays, path) -> Any:
    other = "another optimizer" if group == "opt_state" else "another model"
    leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
    expected = {}
    for p, leaf in leaves:
        expected["/".join(filter(None, [group, _path_name(p)]))] = jnp.asarray(leaf)
    stored = sorted(n for n in arrays if n == group or n.startswith(group + "/"))
    for name in sorted(set(expected) | set(stored)):
        if name not in arrays:
            raise CheckpointError(f"checkpoint {path!r} is from {other}: {name!r} is missing from it")
        if name not in expected:
            raise CheckpointError(f"checkpoint {path!r} is from {other}: it has {name!r}, which this one lacks")
        a, e = arrays[name], expected[name]
        if a.shape != e.shape or a.dtype != e.dtype:
            raise CheckpointError(
                f"checkpoint {path!r} is from {other}: {name!r} is {a.dtype}{list(a.shape)} "
                f"there, {e.dtype}{list(e.shape)} here"
            )
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(arrays[n]) for n in expected])


def load_checkpoint(
    path: str | os.PathLike[str], *, params: Params, state: State | None = None, opt_state: OptState | None = None
) -> Checkpoint:
    """Restore a checkpoint into trees shaped like the templates ``params``, ``state``, ``opt_state``.

    The templates come from the same model's ``init`` and the optimizer's ``init`` (their
    values are ignored). Pass ``opt_state=None`` to skip the optimizer state.

    Raises:
      CheckpointError: naming the first differing path when the checkpoint belongs to
        another model or optimizer, for an optimizer state written by a jaxnet older than
        the one-array hyperparameters (format 1: load it with ``opt_state=None``), and for
        everything :func:`read_checkpoint` rejects.
    """
    path = os.fspath(path)
    meta, arrays = read_checkpoint(path)
    if opt_state is not None and meta["format_version"] < _FIRST_PACKED_VERSION:
        raise CheckpointError(
            f"checkpoint {path!r} has format version {meta['format_version']}: its optimizer state "
            "keeps one array per hyperparameter, which this jaxnet no longer reads; load it with "
            "opt_state=None (params and state load) and start a fresh optimizer state"
        )
    p = _restore("params", params, arrays, path)
    s = _restore("state", state if state is not None else {}, arrays, path)
    o = _restore("opt_state", opt_state, arrays, path) if opt_state is not None else None
    key = None
    if "key" in arrays:
        impl = meta.get("key_impl")
        key = jax.random.wrap_key_data(jnp.asarray(arrays["key"]), impl=impl) if impl else jnp.asarray(arrays["key"])
    return Checkpoint(p, s, o, int(arrays["step"]), key, meta.get("history"), meta.get("config", {}))
