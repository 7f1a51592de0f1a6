"""Masks choose which parameters a regularizer or weight decay touches.

A mask is one of

* ``None``: every leaf;
* a pytree of bools with the params' structure, or a prefix of it
  (``{"dense_0": True, "dense_2": {"w": True, "b": False}}``);
* a function ``params -> pytree of bools``, such as :func:`weights_only` or one built by
  :func:`path_mask` from a predicate on each leaf's path.
"""

from __future__ import annotations

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


def weights_only(params: Params) -> Any:
    """The mask of the leaves named ``"w"`` (Dense weights): not biases ``"b"``, nor BatchNorm's
    ``"gamma"``/``"beta"``, nor PReLU/ELU ``"alpha"``."""
    return path_mask(lambda path, leaf: bool(path) and path[-1] == "w")(params)


def resolve_mask(params: Params, mask: Any, *, owner: str, argname: str = "mask") -> Any:
    """Expand ``mask`` to a pytree of Python bools with exactly the params' structure.

    Raises:
      ValueError: if the mask's structure is not the params' structure or a prefix of it.
      TypeError: if a mask leaf is not a bool.
    """
    if mask is None:
        return jax.tree_util.tree_map(lambda _: True, params)
    if callable(mask):
        mask = mask(params)

    def expand(m, sub):
        if not isinstance(m, (bool, np.bool_)):
            raise TypeError(f"{owner}: {argname} leaves must be bools, got {m!r}")
        return jax.tree_util.tree_map(lambda _: bool(m), sub)

    try:
        return jax.tree_util.tree_map(expand, mask, params)
    except ValueError as e:
        raise ValueError(
            f"{owner}: {argname} does not match the params' structure (or a prefix of it): "
            f"mask {jax.tree_util.tree_structure(mask)} vs params "
            f"{jax.tree_util.tree_structure(params)} ({e})"
        ) from None
