"""L1 and L2 penalties as the handwritten backprop takes them: values and hand-written gradients.

A penalty is ``(kind, lam)`` or ``(kind, lam, mask)``:

* ``("l2", lam)``: ``(lam / 2) sum w^2``, gradient ``lam w``;
* ``("l1", lam)``: ``lam sum |w|``, subgradient ``lam sign(w)`` with ``sign(0) = 0``.

``mask`` chooses the penalised parameters: ``None`` (all of them), a pytree of bools with the
params' structure or a prefix of it (``{"dense_0": True, "dense_2": {"w": True, "b": False}}``),
or a function ``params -> mask`` (e.g. :func:`jaxnet.optim.weights_only`): the masks of
:mod:`jaxnet.optim.masks`. These are the same penalties as
:func:`jaxnet.optim.l2_penalty` and :func:`jaxnet.optim.l1_penalty`.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

KINDS = ("l1", "l2")


class Penalty(NamedTuple):
    """A parsed penalty: ``kind`` in ``{"l1", "l2"}``, strength ``lam >= 0``, optional ``mask``."""

    kind: str
    lam: float
    mask: object = None


def parse_penalties(penalties: Sequence, *, where: str = "penalties") -> tuple[Penalty, ...]:
    """Check and normalise a sequence of ``(kind, lam[, mask])`` tuples.

    Raises:
      TypeError/ValueError: naming the entry, for a malformed tuple, an unknown kind or a negative ``lam``.
    """
    if isinstance(penalties, (tuple, list)) and len(penalties) in (2, 3) and isinstance(penalties[0], str):
        raise TypeError(f"{where}: penalties must be a sequence of tuples, e.g. [{tuple(penalties)!r}], got one tuple")
    out = []
    for i, p in enumerate(penalties):
        if not isinstance(p, (tuple, list)) or len(p) not in (2, 3):
            raise TypeError(f"{where}: penalty {i} must be (kind, lam) or (kind, lam, mask), got {p!r}")
        kind, lam, mask = (tuple(p) + (None,))[:3]
        if kind not in KINDS:
            raise ValueError(f"{where}: penalty {i} kind must be one of {KINDS}, got {kind!r}")
        if not isinstance(lam, jax.Array):
            try:
                if float(lam) < 0:
                    raise ValueError(f"{where}: penalty {i} ({kind}) needs lam >= 0, got {lam!r}")
            except TypeError:
                raise TypeError(f"{where}: penalty {i} ({kind}) lam must be a number, got {lam!r}") from None
        out.append(Penalty(kind, lam, mask))
    return tuple(out)


def _full_mask(params, mask):
    if mask is None:
        return jax.tree_util.tree_map(lambda _: True, params)
    if callable(mask):
        mask = mask(params)
    def expand(m, sub):
        if not isinstance(m, (bool, np.bool_)):
            raise TypeError(f"penalty mask leaves must be bools, got {m!r}")
        return jax.tree_util.tree_map(lambda _: bool(m), sub)

    try:
        return jax.tree_util.tree_map(expand, mask, params)
    except ValueError as e:
        raise ValueError(f"penalty mask does not match the params' structure (or a prefix of it): {e}") from None


def penalty_value(params, kind: str, lam, mask=None):
    """``(lam/2) sum w^2`` (``"l2"``) or ``lam sum |w|`` (``"l1"``) over the masked parameters.

    ``|w|`` is written ``w sign(w)`` so that ``jax.grad`` of this value gives the same
    subgradient as :func:`penalty_gradient` at ``w = 0`` (namely 0).
    """
    full = _full_mask(params, mask)
    total = 0.0
    for p, m in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(full)):
        if m:
            total = total + (0.5 * jnp.sum(p * p) if kind == "l2" else jnp.sum(p * jnp.sign(p)))
    return lam * total


def penalty_gradient(params, kind: str, lam, mask=None):
    """``lam w`` (``"l2"``) or ``lam sign(w)`` (``"l1"``, ``sign(0) = 0``) on masked leaves, 0 elsewhere."""
    full = _full_mask(params, mask)
    rule = (lambda p: lam * p) if kind == "l2" else (lambda p: lam * jnp.sign(p))
    return jax.tree_util.tree_map(lambda p, m: rule(p).astype(p.dtype) if m else jnp.zeros_like(p), params, full)


def penalties_value(params, specs: Sequence[Penalty]):
    """The sum of :func:`penalty_value` over parsed penalties."""
    return sum(penalty_value(params, s.kind, s.lam, s.mask) for s in specs)


def penalties_gradient(params, specs: Sequence[Penalty]):
    """The sum of :func:`penalty_gradient` over parsed penalties."""
    total = jax.tree_util.tree_map(jnp.zeros_like, params)
    for s in specs:
        total = jax.tree_util.tree_map(jnp.add, total, penalty_gradient(params, s.kind, s.lam, s.mask))
    return total
