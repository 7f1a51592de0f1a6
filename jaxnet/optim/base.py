"""The optimizer protocol's plumbing: applying updates and composing transforms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from jaxnet.optim.interop import as_optimizer
from jaxnet.optim.program import inner_key, with_program_key
from jaxnet.types import Optimizer, Params


def apply_updates(params: Params, updates: Params) -> Params:
    """Return ``params + updates`` leaf by leaf, keeping each parameter's dtype.

    Optimizers return updates that already carry the sign of the step
    (``-lr * g`` for gradient descent), so this is a plain sum.
    """
    return jax.tree_util.tree_map(
        lambda p, u: (p + u).astype(p.dtype) if u is not None else p,
        params,
        updates,
        is_leaf=lambda x: x is None,
    )


class ChainState(NamedTuple):
    """State of :func:`chain`: one state per transform, in order."""

    states: tuple


def chain(*transforms: Optimizer) -> Optimizer:
    """Compose transforms left to right: each receives the previous one's updates.

    ``chain(clip_by_global_norm(1.0), sgd(0.1))`` clips the gradients, then takes
    an SGD step on the clipped gradients.

    Raises:
      ValueError: when called with no transforms.
      TypeError: when an argument has no ``init``/``update`` (jaxnet optimizers and optax
        transforms both do).

    The returned ``update`` raises TypeError when given a state that this chain's ``init`` did not make
    (another chain's, with a different number of transforms).
    """
    if not transforms:
        raise ValueError("chain() needs at least one transform, got none")
    transforms = tuple(as_optimizer(t, owner=f"chain() argument {i}") for i, t in enumerate(transforms))

    def init(params):
        return ChainState(tuple(t.init(params) for t in transforms))

    def update(grads, state, params=None):
        if not isinstance(state, ChainState) or len(state.states) != len(transforms):
            got = f"{len(state.states)} states" if isinstance(state, ChainState) else type(state).__name__
            raise TypeError(
                f"chain.update: expected the ChainState of {len(transforms)} transforms that chain's init(params) "
                f"returns, got {got}"
            )
        new_states = []
        updates = grads
        for t, s in zip(transforms, state.states, strict=True):
            updates, s = t.update(updates, s, params)
            new_states.append(s)
        return updates, ChainState(tuple(new_states))

    key = inner_key(*transforms)
    if key is not None:
        with_program_key(update, "chain", key)
    return Optimizer(init, update)


def tree_map_n(fn: Callable[..., tuple], n: int, tree: Any, *rest: Any) -> tuple[Any, ...]:
    """Map ``fn`` returning an ``n``-tuple over leaves; return ``n`` trees shaped like ``tree``."""
    treedef: Any = jax.tree_util.tree_structure(tree)  # jax ships no usable type for PyTreeDef
    outs = [fn(*xs) for xs in zip(treedef.flatten_up_to(tree), *(treedef.flatten_up_to(r) for r in rest), strict=True)]
    return tuple(treedef.unflatten([o[i] for o in outs]) for i in range(n))
