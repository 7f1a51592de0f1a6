"""L1 and L2 penalties as the handwritten backprop takes them: values and hand-written gradients.

A penalty is ``(kind, lam)`` or ``(kind, lam, mask)``:

* ``("l2", lam)``: ``(lam / 2) sum w^2``, gradient ``lam w``;
* ``("l1", lam)``: ``lam sum |w|``, subgradient ``lam sign(w)`` with ``sign(0) = 0``.

``mask`` chooses the penalised parameters: ``None`` (all of them), a pytree of bools with the
params' structure or a prefix of it (``{"dense_0": True, "dense_2": {"w": True, "b": False}}``),
or a function ``params -> mask`` (e.g. :func:`jaxnet.optim.weights_only`): the masks of
:mod:`jaxnet.optim.masks`. Values are computed by
:func:`jaxnet.optim.l2_penalty` and :func:`jaxnet.optim.l1_penalty`; the gradients here are written by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxnet.optim.masks import resolve_mask
from jaxnet.optim.regularizers import l1_penalty, l2_penalty
from jaxnet.types import Array, Params

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
        kind, lam, mask = (*p, None)[:3]
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
    return resolve_mask(params, mask, owner="penalty")


def penalty_value(params: Params, kind: str, lam: float | Array, mask: Any = None) -> Array:
    """``(lam/2) sum w^2`` (``"l2"``) or ``lam sum |w|`` (``"l1"``) over the masked parameters.

    The optimizers' own :func:`jaxnet.optim.l2_penalty` / :func:`jaxnet.optim.l1_penalty`, so that
    ``jax.grad`` of this value has the same subgradient as :func:`penalty_gradient` at ``w = 0`` (0).
    """
    return (l2_penalty if kind == "l2" else l1_penalty)(params, lam, mask)


def penalty_gradient(params: Params, kind: str, lam: float | Array, mask: Any = None) -> Params:
    """``lam w`` (``"l2"``) or ``lam sign(w)`` (``"l1"``, ``sign(0) = 0``) on masked leaves, 0 elsewhere."""
    full = _full_mask(params, mask)
    rule = (lambda p: lam * p) if kind == "l2" else (lambda p: lam * jnp.sign(p))
    return jax.tree_util.tree_map(lambda p, m: rule(p).astype(p.dtype) if m else jnp.zeros_like(p), params, full)


def penalties_value(params: Params, specs: Sequence[Penalty]) -> Array:
    """The sum of :func:`penalty_value` over parsed penalties."""
    return jnp.asarray(sum(penalty_value(params, s.kind, s.lam, s.mask) for s in specs))


def penalties_gradient(params: Params, specs: Sequence[Penalty]) -> Params:
    """The sum of :func:`penalty_gradient` over parsed penalties."""
    total = jax.tree_util.tree_map(jnp.zeros_like, params)
    for s in specs:
        total = jax.tree_util.tree_map(jnp.add, total, penalty_gradient(params, s.kind, s.lam, s.mask))
    return total
