"""Masks choose which parameters a regularizer or weight decay touches.

A mask is one of

* ``None``: every leaf;
* a pytree of bools with the params' structure, or a prefix of it
  (``{"dense_0": True, "dense_2": {"w": True, "b": False}}``);
* a function ``params -> pytree of bools``, such as :func:`weights_only` or one built by
  :func:`path_mask` from a predicate on each leaf's path.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jaxnet.types import Params


def _key_name(k) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def path_mask(predicate: Callable) -> Callable:
    """A mask function selecting the leaves for which ``predicate(path, leaf)`` is true.

    ``path`` is the tuple of keys leading to the leaf as strings, e.g. ``("dense_0", "w")``.
    """
    if not callable(predicate):
        raise TypeError(f"path_mask: predicate must be a function (path, leaf) -> bool, got {predicate!r}")

    def mask(params):
        return jax.tree_util.tree_map_with_path(
            lambda path, leaf: bool(predicate(tuple(_key_name(k) for k in path), leaf)), params
        )

    return mask


WEIGHT_NAMES = ("w", "kernel")
"""Leaf names of weight matrices and kernels: jaxnet's and Haiku's ``w``, Flax's (Linen and NNX) ``kernel``."""


def weights_only(params: Params) -> Any:
    """The mask of the weight matrices and kernels: leaves named ``"w"`` (jaxnet, Haiku) or ``"kernel"`` (Flax).

    Leaves alone biases (``"b"``, ``"bias"``), norms' scales and offsets (``"gamma"``, ``"beta"``,
    ``"scale"``), PReLU/ELU ``"alpha"`` and embeddings: the usual target of weight decay.
    A name matches when it is the last key of the leaf's path, or the key above a trailing
    ``value`` (Flax NNX's ``nnx.Param`` state).
    """

    def chosen(path, leaf):
        if path and path[-1] == "value":
            path = path[:-1]
        return bool(path) and path[-1] in WEIGHT_NAMES

    return path_mask(chosen)(params)


def fill_empty(prefix, tree):
    """``prefix`` with the keys it lacks added where ``tree`` holds no leaf there (parameter-free layers).

    A mask or label dict may then name only the layers with parameters: ``{"dense_0": True,
    "dense_2": False}`` for ``{"dense_0": ..., "relu_1": {}, "dense_2": ...}``.
    """
    if isinstance(prefix, dict) and isinstance(tree, dict):
        out = {k: fill_empty(v, tree[k]) if k in tree else v for k, v in prefix.items()}
        for k, sub in tree.items():
            if k not in out and not jax.tree_util.tree_leaves(sub):
                out[k] = sub
        return out
    return prefix


def _check_mask_function(fn: Callable, owner: str, argname: str) -> None:
    """Reject a function that needs two arguments: a ``(path, leaf)`` predicate given where a mask is meant."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins and some callables have no signature: let the call decide
        return
    required = [
        p
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    if len(required) >= 2:
        raise TypeError(
            f"{owner}: {argname} is a function of {len(required)} arguments "
            f"({', '.join(p.name for p in required)}); a {argname} function takes the params tree alone. "
            f"For a predicate on each leaf's path, wrap it: path_mask(lambda path, leaf: ...), or "
            f"jax.tree_util.tree_map_with_path for labels"
        )


def resolve_mask(params: Params, mask: Any, *, owner: str, argname: str = "mask", allow_empty: bool = False) -> Any:
    """Expand ``mask`` to a pytree of Python bools with exactly the params' structure.

    Raises:
      ValueError: if the mask's structure is not the params' structure or a prefix of it, or
        (unless ``allow_empty``) if it selects no leaf of non-empty params: a mask that
        silently does nothing is almost always a mask written for other parameter names.
      TypeError: if a mask leaf is not a bool, or the mask is a function of two arguments (a
        ``(path, leaf)`` predicate that needs :func:`path_mask`).
    """
    if mask is None:
        return jax.tree_util.tree_map(lambda _: True, params)
    if callable(mask):
        _check_mask_function(mask, owner, argname)
        mask = mask(params)

    def expand(m, sub):
        if not isinstance(m, (bool, np.bool_)):
            raise TypeError(f"{owner}: {argname} leaves must be bools, got {m!r}")
        return jax.tree_util.tree_map(lambda _: bool(m), sub)

    try:
        full = jax.tree_util.tree_map(expand, fill_empty(mask, params), params)
    except ValueError as e:
        raise ValueError(
            f"{owner}: {argname} does not match the params' structure (or a prefix of it): "
            f"mask {jax.tree_util.tree_structure(mask)} vs params "
            f"{jax.tree_util.tree_structure(params)} ({e})"
        ) from None
    leaves = jax.tree_util.tree_leaves(full)
    if leaves and not any(leaves) and not allow_empty:
        names = sorted(
            {"/".join(_key_name(k) for k in path) for path, _ in jax.tree_util.tree_leaves_with_path(params)}
        )
        shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
        raise ValueError(
            f"{owner}: {argname} selects no parameter (params: {shown}); weights_only selects leaves named "
            f"{' or '.join(WEIGHT_NAMES)}, path_mask(lambda path, leaf: ...) any other"
        )
    return full
