"""Freezing parameters and one optimizer per group of parameters (optax's ``multi_transform`` semantics).

``multi_transform({"head": adam(1e-3), "body": sgd(1e-4)}, labels)`` gives every parameter a
label (``labels`` is a pytree of strings shaped like the params, a prefix of it, or a function
``params -> labels``) and runs each optimizer on its own leaves only: the others are ``None``
in the trees it sees, so it keeps no state for them. ``freeze(mask, optimizer)`` is the
two-group case with :func:`set_to_zero` for the frozen leaves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxnet.optim.interop import as_optimizer
from jaxnet.optim.masks import _check_mask_function, _key_name, fill_empty, resolve_mask
from jaxnet.optim.program import program_key, static_key, with_program_key
from jaxnet.types import Optimizer


class EmptyState(NamedTuple):
    """The state of a transform that keeps none."""


def set_to_zero() -> Optimizer:
    """A transform whose updates are all zero (it keeps no state): the optimizer of frozen parameters."""

    def init(params):
        del params
        return EmptyState()

    def update(grads, state, params=None):
        del params
        return jax.tree_util.tree_map(jnp.zeros_like, grads), state

    with_program_key(update, "set_to_zero")
    return Optimizer(init, update)


class MultiTransformState(NamedTuple):
    """State of :func:`multi_transform`: label -> that group's optimizer state (over its leaves only)."""

    inner_states: dict


def _resolve_labels(tree, labels, owner: str):
    """The labels as a pytree of strings with exactly ``tree``'s structure."""
    if callable(labels):
        _check_mask_function(labels, owner, "labels")
        labels = labels(tree)

    def expand(label, sub):
        if not isinstance(label, str):
            raise TypeError(f"{owner}: labels must be strings, got {label!r}")
        return jax.tree_util.tree_map(lambda _: label, sub)

    try:
        return jax.tree_util.tree_map(expand, fill_empty(labels, tree), tree)
    except ValueError as e:
        raise ValueError(
            f"{owner}: labels do not match the params' structure (or a prefix of it): labels "
            f"{jax.tree_util.tree_structure(labels)} vs params {jax.tree_util.tree_structure(tree)} ({e})"
        ) from None


def _only(tree, full_labels, label):
    # the other groups' leaves become None: an empty subtree, which every tree_map skips
    return jax.tree_util.tree_map(lambda x, lab: x if lab == label else None, tree, full_labels)


def _multi(transforms: Mapping[str, Any], labels, *, owner: str, allow_unused: bool) -> Optimizer:
    if not isinstance(transforms, Mapping) or not transforms:
        raise TypeError(f"{owner}: transforms must be a non-empty dict label -> optimizer, got {transforms!r}")
    transforms = {str(k): as_optimizer(v, owner=f"{owner}: transforms[{k!r}]") for k, v in transforms.items()}
    if not (callable(labels) or jax.tree_util.tree_leaves(labels)):
        raise TypeError(f"{owner}: labels must be a pytree of strings or a function params -> labels, got {labels!r}")

    def check(tree):
        full = _resolve_labels(tree, labels, owner)
        used = set(jax.tree_util.tree_leaves(full))
        missing = sorted(used - set(transforms))
        if missing:
            where = [
                "/".join(_key_name(k) for k in path)
                for path, lab in jax.tree_util.tree_leaves_with_path(full)
                if lab == missing[0]
            ]
            raise ValueError(
                f"{owner}: label {missing[0]!r} (of {where[0]}) has no optimizer; transforms has {sorted(transforms)}"
            )
        unused = sorted(set(transforms) - used)
        if unused and not allow_unused and jax.tree_util.tree_leaves(tree):
            raise ValueError(f"{owner}: the optimizer for label {unused[0]!r} has no parameter with that label")
        return full

    def init(params):
        full = check(params)
        return MultiTransformState({k: t.init(_only(params, full, k)) for k, t in transforms.items()})

    def update(grads, state, params=None):
        full = check(grads)
        treedef: Any = jax.tree_util.tree_structure(grads)
        labs = treedef.flatten_up_to(full)
        out = [None] * len(labs)
        new_states = {}
        for k, t in transforms.items():
            p = None if params is None else _only(params, full, k)
            u, new_states[k] = t.update(_only(grads, full, k), state.inner_states[k], p)
            for i, (lab, leaf) in enumerate(zip(labs, treedef.flatten_up_to(u), strict=True)):
                if lab == k:
                    out[i] = leaf
        return treedef.unflatten(out), MultiTransformState(new_states)

    keys = tuple(sorted((k, program_key(t)) for k, t in transforms.items()))
    if all(k is not None for _, k in keys):
        with_program_key(update, owner, keys, static_key(labels), allow_unused)
    return Optimizer(init, update)


def multi_transform(transforms: Mapping[str, Any], labels) -> Optimizer:
    """One optimizer per group of parameters, as ``optax.multi_transform``.

    Args:
      transforms: label -> optimizer (jaxnet or optax).
      labels: a pytree of label strings with the params' structure (or a prefix of it,
        ``{"dense_0": "body", "dense_2": "head"}``), or a function ``params -> labels``.

    Returns:
      An optimizer whose state is a :class:`MultiTransformState`; group ``k``'s optimizer sees
      only the leaves labelled ``k`` (the others are ``None``) and keeps state for those only.

    Raises:
      TypeError: for an empty ``transforms``, a non-optimizer, or a label that is not a string.
      ValueError: at ``init``/``update``, for labels not matching the params, a label with no
        optimizer, or an optimizer whose label no parameter has.
    """
    return _multi(transforms, labels, owner="multi_transform", allow_unused=False)


def freeze(mask: Callable | Any, optimizer=None) -> Optimizer:
    """Freeze the parameters ``mask`` selects: their updates are zero.

    ``freeze(mask, optimizer)`` runs ``optimizer`` on the other (trainable) parameters only,
    with no optimizer state and no weight decay for the frozen ones: the way to fine-tune a
    pretrained network's head. ``freeze(mask)`` alone is a transform to put first in a
    :func:`~jaxnet.optim.chain`: it zeroes the frozen leaves' gradients, but the optimizers
    after it still keep state for them (and a decoupled weight decay still moves them).

    Args:
      mask: which leaves to freeze (``True``: frozen); see :mod:`jaxnet.optim.masks`.
      optimizer: the optimizer of the trainable parameters, or ``None``.

    Raises:
      ValueError: at ``init``, if the mask does not match the params or selects none of them.
    """
    if optimizer is None:

        def init(params):
            resolve_mask(params, mask, owner="freeze")
            return EmptyState()

        def update(grads, state, params=None):
            frozen = resolve_mask(grads, mask, owner="freeze")
            return jax.tree_util.tree_map(lambda g, f: jnp.zeros_like(g) if f else g, grads, frozen), state

        with_program_key(update, "freeze", static_key(mask))
        return Optimizer(init, update)

    optimizer = as_optimizer(optimizer, owner="freeze: optimizer")

    def labels(tree):
        frozen = resolve_mask(tree, mask, owner="freeze")
        return jax.tree_util.tree_map(lambda f: "frozen" if f else "trainable", frozen)

    # labels is a new function per call: key the labels on the mask instead, so that equal
    # freezes of equal optimizers are one compiled program
    inner = _multi({"trainable": optimizer, "frozen": set_to_zero()}, labels, owner="freeze", allow_unused=True)
    key = program_key(inner)
    if key is not None:
        with_program_key(inner.update, "freeze", program_key(optimizer), static_key(mask))
    return inner
