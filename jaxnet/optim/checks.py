"""Checks every jaxnet optimizer runs on what it is given: float params at ``init``, its own state at ``update``.

An optimizer's ``update`` given the state of another optimizer (``sgd(0.1).update(g,
adam(1e-3).init(p))``), of the same optimizer built with other options, of another model's
params, or ``None`` would otherwise step with the wrong hyperparameters or fail deep inside
a ``tree_map``. These checks run at trace time (on types, names and shapes only), so a
compiled step pays nothing for them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _path(prefix: str, path) -> str:
    return prefix + "".join(
        f"[{p.key!r}]" if hasattr(p, "key") else f"[{p.idx}]" if hasattr(p, "idx") else f".{getattr(p, 'name', p)}"
        for p in path
    )


def check_float_params(owner: str, params) -> None:
    """Raise ``TypeError`` naming the first params leaf that is not floating point.

    Gradient steps on integer or bool arrays would be truncated to nothing (or fail).
    """
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"{owner}.init: {_path('params', path)} has dtype {dtype}; an optimizer needs floating-point "
                "params (cast it to a float dtype, or keep integer arrays in the model's state)"
            )


def check_state(owner: str, state, cls: type, grads, *, hyper_names: tuple | None = None, trees: dict) -> None:
    """Check that ``state`` is what ``owner``'s own ``init`` built for params shaped like ``grads``.

    Args:
      owner: the optimizer's name (``"sgd"``), used in messages.
      state: the optimizer state given to ``update``.
      cls: the state's NamedTuple class (``SgdState``).
      grads: the gradients (their structure and shapes are the params').
      hyper_names: the names of the stored hyperparameters this optimizer's ``init`` packs.
      trees: state field name -> whether that field holds a tree like the params (True) or
        ``None`` (False), as this optimizer was built.

    Raises:
      TypeError: for ``None`` or the state of another optimizer, naming both.
      ValueError: for a state of the same optimizer built with other options, or whose moment
        trees do not match the gradients (another model's params), naming the path.
    """
    if state is None:
        raise TypeError(f"{owner}.update: opt_state is None; pass the state {owner}'s init(params) returned")
    if not isinstance(state, cls):
        raise TypeError(
            f"{owner}.update: got the state of another optimizer ({type(state).__name__}); expected the "
            f"{cls.__name__} that {owner}'s init(params) returns"
        )
    if hyper_names is not None:
        names = tuple(getattr(getattr(state, "hyper", None), "names", ()))
        if names != tuple(hyper_names):
            raise ValueError(
                f"{owner}.update: the state stores hyperparameters {list(names)}, this {owner} stores "
                f"{list(hyper_names)}: it is the state of a {owner} built with other options"
            )
    g_leaves, g_def = jax.tree_util.tree_flatten_with_path(grads)
    for field, is_tree in trees.items():
        value = getattr(state, field)
        if not is_tree:
            if value is not None:
                raise ValueError(
                    f"{owner}.update: opt_state.{field} is set, but this {owner} keeps none: it is the state of "
                    f"a {owner} built with other options"
                )
            continue
        if value is None:
            raise ValueError(
                f"{owner}.update: opt_state.{field} is None, but this {owner} keeps one: it is the state of a "
                f"{owner} built with other options"
            )
        s_leaves, s_def = jax.tree_util.tree_flatten_with_path(value)
        if s_def != g_def:  # type: ignore[operator]  # PyTreeDef compares by structure
            raise ValueError(
                f"{owner}.update: opt_state.{field} has the structure {s_def}, the gradients {g_def}: "
                "a state of another model's params"
            )
        for (path, g), (_, s) in zip(g_leaves, s_leaves, strict=True):
            if jnp.shape(g) != jnp.shape(s):
                raise ValueError(
                    f"{owner}.update: {_path(f'opt_state.{field}', path)} has shape {tuple(jnp.shape(s))}, its "
                    f"gradient {tuple(jnp.shape(g))}: a state of another model's params"
                )


def stored_names(**specs) -> tuple:
    """The names :meth:`Hyperparameters.pack` stores for these specs (schedules have no stored value)."""
    return tuple(k for k, v in specs.items() if not (callable(v) and not hasattr(v, "shape")))
