"""Gradient checking: handwritten backprop against ``jax.grad`` against central finite differences.

For every parameter path (``"dense_0/w"``) :func:`check_grads` reports the largest relative
error, measured against the scale of that parameter's gradient::

    relative_error(a, b) = max_i |a_i - b_i| / max(max_i |a_i|, max_i |b_i|)

(0 when both are zero). Relative to the whole array rather than entry by entry, so that an
entry whose gradient is nearly zero does not turn round-off into a large "relative" error; and
never relative to less than ``u^(1/3)`` times the largest gradient entry of the whole model
(``u`` the machine epsilon; ``u^(1/3)`` is 6e-6 in float64), so that a parameter whose gradient
is zero in exact arithmetic (the bias of a ``Dense`` followed by ``BatchNorm``) is judged by its
round-off against the model's scale. Finite differences are compared after discounting their
own round-off, ``10 u |L| / eps`` (each ``L(w +- eps)`` is rounded before the division by
``2 eps``): a difference within that bound counts as 0.
Run it in float64 (``jax.config.update("jax_enable_x64", True)`` and float64 params) for
tight tolerances; float32 works with looser defaults.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxnet.autodiff import penalties as P
from jaxnet.autodiff.backprop import backprop, check_supported, loss_name
from jaxnet.nn import losses as L
from jaxnet.types import Array, Layer, Params, State


class GradError(NamedTuple):
    """Max relative errors for one parameter path.

    Attributes:
      handwritten: handwritten backprop vs ``jax.grad``, over every entry (``nan`` when the
        model has a layer without a handwritten rule: the column is absent).
      finite_differences: central differences vs ``jax.grad``, over the checked entries
        (``nan`` when finite differences were skipped).
    """

    handwritten: float
    finite_differences: float


class GradientMismatchError(ValueError):
    """Two ways of computing a gradient disagree beyond the tolerance; the message names the path."""


def relative_error(a: ArrayLike, b: ArrayLike, floor: float = 0.0) -> float:
    """``max |a - b| / max(max |a|, max |b|, floor)``, 0 when ``a == b`` (computed in float64 NumPy).

    ``floor`` keeps a gradient that is zero in exact arithmetic (a bias feeding a BatchNorm)
    from turning round-off on both sides into a large relative error.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0), floor)
    diff = np.max(np.abs(a - b), initial=0.0)
    return 0.0 if diff == 0 else float(diff / scale)


def _path(p) -> str:
    return jax.tree_util.keystr(p, simple=True, separator="/")


def _defaults(params, x):
    leaves = [jnp.asarray(leaf) for leaf in jax.tree_util.tree_leaves(params)] + [jnp.asarray(x)]
    floats = [leaf.dtype for leaf in leaves if jnp.issubdtype(leaf.dtype, jnp.floating)]
    wide = any(d == jnp.float64 for d in floats)
    # (rtol, fd_rtol, eps): round-off bounds the agreement; central differences err by O(eps^2) + O(u/eps).
    return (1e-8, 1e-5, 1e-6) if wide else (1e-3, 5e-2, 1e-3)


def check_grads(
    model: Layer,
    params: Params,
    state: State,
    x: Array,
    y: Array,
    loss: str | Callable[..., Array],
    *,
    where: Array | None = None,
    penalties: Sequence = (),
    key: Array | None = None,
    train: bool = True,
    mask: Array | None = None,
    rtol: float | None = None,
    fd_rtol: float | None = None,
    eps: float | None = None,
    fd_entries: int | None = 16,
    fd_key: Array | None = None,
    raise_on_error: bool = True,
) -> dict[str, GradError]:
    """Compare the handwritten backprop, ``jax.grad`` and central finite differences.

    The objective is ``loss(model.apply(params, state, x, key=key, train=train, mask=mask), y, where)``
    plus the penalties. ``jax.grad`` is the reference; the handwritten gradient must agree
    with it within ``rtol`` and the central difference ``(L(w + eps) - L(w - eps)) / (2 eps)``
    within ``fd_rtol``.

    Args:
      model, params, state, x, y, loss, where, penalties, key, train, mask: as for
        :func:`jaxnet.autodiff.backprop.backprop` (``mask``, ``[batch]`` or ``[batch, time]``, goes
        to ``model.apply`` on every side).
      rtol: tolerance for handwritten vs ``jax.grad`` (default 1e-8 in float64, 1e-3 in float32).
      fd_rtol: tolerance for finite differences vs ``jax.grad`` (default 1e-5 / 5e-2).
      eps: finite-difference step (default 1e-6 in float64, 1e-3 in float32).
      fd_entries: entries per parameter checked by finite differences, drawn at random with
        ``fd_key`` (``None``: every entry; 0: skip finite differences).
      fd_key: PRNG key choosing those entries (default ``PRNGKey(0)``).
      raise_on_error: raise on the first path above tolerance (else only report).

    A model with a layer that has no handwritten rule (a custom layer, or a kind not in
    ``jaxnet.autodiff.backprop.RULES``) is still checked: ``jax.grad`` against finite
    differences only. A :class:`UserWarning` names the layer and says the handwritten column
    is absent, and every ``handwritten`` entry of the report is ``nan``.

    Returns:
      ``{path: GradError(handwritten, finite_differences)}``, paths like ``"dense_0/w"``.

    Raises:
      ValueError: if the loss has no handwritten gradient (naming it).
      GradientMismatchError: naming the parameter path whose error exceeds the tolerance.
    """
    try:
        check_supported(model, where="check_grads")
        absent = None
    except ValueError as e:
        absent = str(e)
        warnings.warn(
            f"{absent}. The handwritten column is absent (nan): comparing jax.grad with finite differences only",
            UserWarning,
            stacklevel=2,
        )
    loss_fn = L.LOSSES[loss_name(loss)]
    specs = P.parse_penalties(penalties, where="check_grads")
    d_rtol, d_fd_rtol, d_eps = _defaults(params, x)
    rtol = d_rtol if rtol is None else rtol
    fd_rtol = d_fd_rtol if fd_rtol is None else fd_rtol
    eps = d_eps if eps is None else eps

    def objective(p):
        out, _ = model.apply(p, state, x, key=key, train=train, mask=mask)
        total = loss_fn(out, y, where)
        return total + P.penalties_value(p, specs) if specs else total

    leaves, treedef = jax.tree_util.tree_flatten(params)
    paths = [_path(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    fd_key = jax.random.PRNGKey(0) if fd_key is None else fd_key
    chosen = [
        _choose(fd_key, j, int(np.size(leaf)), fd_entries) if fd_entries != 0 and np.size(leaf) > 0 else None
        for j, leaf in enumerate(leaves)
    ]

    def everything(p):
        # One compiled program for all three, so a check costs one compilation.
        hw = None
        if absent is None:
            _, hw = backprop(
                model, p, state, x, y, loss, where=where, penalties=penalties, key=key, train=train, mask=mask
            )
        flat = jax.tree_util.tree_leaves(p)
        fds = [
            None if idx is None else _central_differences(objective, flat, treedef, j, idx, eps)
            for j, idx in enumerate(chosen)
        ]
        value, ref = jax.value_and_grad(objective)(p)
        return value, ref, hw, fds

    value, reference, handwritten, fds = jax.jit(everything)(params)
    ref_leaves = jax.tree_util.tree_leaves(reference)
    hw_leaves = jax.tree_util.tree_leaves(handwritten) if absent is None else [None] * len(ref_leaves)
    dtype = jnp.result_type(*[jnp.asarray(r).dtype for r in ref_leaves]) if ref_leaves else jnp.float32
    largest = max([float(np.max(np.abs(np.asarray(r, np.float64)), initial=0.0)) for r in ref_leaves] + [0.0])
    floor = float(jnp.finfo(dtype).eps) ** (1 / 3) * largest
    # Each L(w +- eps) is rounded, so a central difference carries about u |L| / eps of noise; not counted.
    fd_noise = 10 * float(jnp.finfo(dtype).eps) * abs(float(value)) / eps
    report = {}
    for j, (path, ref, hw) in enumerate(zip(paths, ref_leaves, hw_leaves, strict=True)):
        hw_err = float("nan") if hw is None else relative_error(hw, ref, floor)
        fd_err = float("nan")
        if chosen[j] is not None:
            fd = np.asarray(fds[j], np.float64)
            ref_at = np.asarray(ref, np.float64).reshape(-1)[chosen[j]]
            scale = max(np.max(np.abs(np.asarray(ref, np.float64))), np.max(np.abs(fd)), floor)
            diff = max(np.max(np.abs(fd - ref_at)) - fd_noise, 0.0)
            fd_err = 0.0 if diff == 0 else float(diff / scale)
        report[path] = GradError(hw_err, fd_err)
        if raise_on_error and hw_err > rtol:
            raise GradientMismatchError(
                f"check_grads: handwritten backprop and jax.grad disagree at {path}: "
                f"max relative error {hw_err:.3g} > rtol {rtol:g}"
            )
        if raise_on_error and fd_err > fd_rtol:
            raise GradientMismatchError(
                f"check_grads: central finite differences and jax.grad disagree at {path}: "
                f"max relative error {fd_err:.3g} > fd_rtol {fd_rtol:g} (eps={eps:g}; a kink such as "
                "relu at 0 within eps of a checked point also causes this; try float64 or another fd_key)"
            )
    return report


def _choose(key, j: int, size: int, n: int | None) -> np.ndarray:
    """Which entries of leaf ``j`` finite differences check: all, or ``n`` drawn without replacement by ``key``."""
    if n is None or n >= size:
        return np.arange(size)
    data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    rng = np.random.default_rng([int(v) for v in np.asarray(data).ravel()] + [j])
    return np.sort(rng.choice(size, n, replace=False))


def _central_differences(objective, leaves, treedef, j, idx, eps):
    """``(L(w + eps e_i) - L(w - eps e_i)) / (2 eps)`` for entries ``idx`` of leaf ``j``, vmapped over ``i``."""
    leaf = jnp.asarray(leaves[j])

    def at(v):
        new = list(leaves)
        new[j] = v
        return objective(jax.tree_util.tree_unflatten(treedef, new))

    basis = jax.nn.one_hot(jnp.asarray(idx), leaf.size, dtype=leaf.dtype).reshape((len(idx), *leaf.shape))
    plus, minus = jax.vmap(at)(leaf + eps * basis), jax.vmap(at)(leaf - eps * basis)
    return (plus - minus) / (2 * eps)
