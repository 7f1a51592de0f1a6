"""Compiled training and evaluation steps.

A training step is one pure function::

    step(params, state, opt_state, batch, key) -> (params, state, opt_state, metrics)

with ``batch = (x, y)`` or ``(x, y, where)`` (``where``: per-sample weights or a
padding mask, passed to the loss and metrics, and to the model as ``apply(..., mask=where)``
so that layers whose output depends on other samples, such as BatchNorm, use the real
samples only). ``metrics`` is a dict of scalar arrays,
always containing ``"loss"`` (the data loss plus any penalty).

``make_train_step`` compiles it with ``params``, ``state`` and ``opt_state`` donated:
their buffers are reused for the results, so the arrays passed in are invalid after the
call (rebind the names, ``params, state, opt_state, m = step(params, state, opt_state, ...)``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jaxnet import _threefry as threefry
from jaxnet.nn.losses import get_loss
from jaxnet.optim.base import apply_updates
from jaxnet.optim.interop import as_optimizer
from jaxnet.types import Array, Layer, Optimizer, Params, check_key

# The augmentation key is derived from the step key by this constant, so that adding an
# augmentation leaves the model's own randomness (dropout) unchanged.
_AUGMENT_SALT = 0x61756731


def _unpack(batch):
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
        raise TypeError(f"batch must be a tuple (x, y) or (x, y, where), got {type(batch).__name__}")
    return (batch[0], batch[1], batch[2] if len(batch) == 3 else None)


def _check(model, optimizer):
    if not isinstance(model, Layer):
        raise TypeError(f"model must be a Layer, got {type(model).__name__}")
    return as_optimizer(optimizer)


def _metric_by_name(fn):
    """A metric given by name: a loss name or ``"accuracy"``/``"binary_accuracy"`` (names compile once)."""
    if not isinstance(fn, str):
        return fn
    from jaxnet.nn import losses

    known = {**losses.LOSSES, "accuracy": losses.accuracy, "binary_accuracy": losses.binary_accuracy}
    if fn not in known:
        raise ValueError(f"metrics: unknown metric name {fn!r}; expected one of {sorted(known)} or a callable")
    return known[fn]


def check_metrics(metrics: Any) -> dict:
    """``metrics`` as a dict name -> callable (names such as ``"accuracy"`` resolved), or a clear error."""
    if metrics is not None and not hasattr(metrics, "items"):
        raise TypeError(
            f"metrics must be a mapping name -> metric (a callable or a name such as 'accuracy'), got {metrics!r:.80}; "
            "e.g. metrics={'accuracy': 'accuracy'}"
        )
    metrics = {name: _metric_by_name(fn) for name, fn in dict(metrics or {}).items()}
    for name, fn in metrics.items():
        if not callable(fn):
            raise TypeError(f"metrics[{name!r}] must be a callable fn(outputs, y, where), got {fn!r}")
        if name == "loss":
            raise ValueError("metrics: the name 'loss' is reserved for the training loss")
    return metrics


def train_step_fn(
    model: Layer,
    loss: str | Callable[..., Array],
    optimizer: Optimizer,
    *,
    penalty: Callable | None = None,
    augment: Callable | None = None,
    metrics: Mapping[str, Callable] | None = None,
) -> Callable:
    """The un-jitted training step (for use inside ``lax.scan`` or ``jax.vmap``).

    Args:
      model, loss, optimizer: the network, a loss (name or ``fn(outputs, y, where)``) and an optimizer.
      penalty: ``penalty(params) -> scalar`` added to the loss (e.g. an L2 penalty).
      augment: ``augment(key, x) -> x`` applied to the batch inputs before the forward pass,
        with its own key derived from the step key.
      metrics: names mapped to ``fn(outputs, y, where)`` or to a metric's name (``"accuracy"``,
        a loss name), evaluated on the batch's outputs (computed with the parameters before the update).

    Returns:
      ``step(params, state, opt_state, batch, key) -> (params, state, opt_state, metrics)``.
    """
    optimizer = _check(model, optimizer)
    loss_fn = get_loss(loss)
    metrics = check_metrics(metrics)
    if penalty is not None and not callable(penalty):
        raise TypeError(f"penalty must be a callable penalty(params) -> scalar, got {penalty!r}")
    if augment is not None and not callable(augment):
        raise TypeError(f"augment must be a callable augment(key, x) -> x, got {augment!r}")

    def objective(params, state, x, y, where, key):
        out, new_state = model.apply(params, state, x, key=key, train=True, mask=where)
        value = loss_fn(out, y, where)
        if penalty is not None:
            value = value + penalty(params)
        return value, (out, new_state)

    def step(params, state, opt_state, batch, key):
        if key is not None:
            check_key("train step", key)
        x, y, where = _unpack(batch)
        if augment is not None:
            if key is None:
                raise TypeError("train step: augment needs a key, got key=None")
            x = augment(threefry.fold_in(key, _AUGMENT_SALT), x)
        (value, (out, state)), grads = jax.value_and_grad(objective, has_aux=True)(params, state, x, y, where, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = apply_updates(params, updates)
        logs = {"loss": value}
        for name, fn in metrics.items():
            logs[name] = fn(out, y, where)
        return params, state, opt_state, logs

    return step


def make_train_step(
    model: Layer,
    loss: str | Callable[..., Array],
    optimizer: Optimizer,
    *,
    penalty: Callable[[Params], Array] | None = None,
    augment: Callable[[Array, Array], Array] | None = None,
    metrics: Mapping[str, Callable[..., Array]] | None = None,
    jit: bool = True,
    donate: bool = True,
) -> Callable:
    """A ``jax.jit``-compiled training step; see :func:`train_step_fn` for the arguments.

    With ``donate=True`` (the default) ``params``, ``state`` and ``opt_state`` are donated:
    the step may overwrite their buffers, so do not use the arrays you passed in afterwards.
    Inputs that share one array (tied weights, or ``set_hyperparameter`` giving two fields
    the same array object) are copied apart and the step runs; calling the step again with
    arrays an earlier call consumed raises a ``ValueError`` saying so. Both are handled only
    when XLA refuses the call, so the common path costs nothing extra.
    """
    step = train_step_fn(model, loss, optimizer, penalty=penalty, augment=augment, metrics=metrics)
    if not jit:
        return step
    if not donate:
        return jax.jit(step)
    return donating(jax.jit(step, donate_argnums=(0, 1, 2)), "train step")


def _unshare(tree):
    """``tree`` with every leaf that is the same array object as an earlier leaf replaced by a copy."""
    seen: set = set()

    def fresh(a):
        if id(a) in seen:
            return jnp.array(a, copy=True)
        seen.add(id(a))
        return a

    return jax.tree_util.tree_map(fresh, tree)


def donating(compiled, where: str):
    """Wrap a jitted step that donates its first three arguments with clear donation errors.

    XLA refuses an executable call that donates one buffer twice ("donate the same buffer
    twice"): the call is retried with the shared leaves copied apart. A call given an array
    that an earlier call consumed fails with jax's "Array has been deleted": re-raised as a
    ``ValueError`` that says to rebind the results or pass ``donate=False``.
    """

    @functools.wraps(compiled)
    def run(params, state, opt_state, *args, **kwargs):
        try:
            return compiled(params, state, opt_state, *args, **kwargs)
        except (RuntimeError, ValueError) as e:  # jax's runtime errors; only a failed call pays for this
            msg = str(e)
            if "donate the same buffer twice" in msg:
                params, state, opt_state = _unshare((params, state, opt_state))
                return compiled(params, state, opt_state, *args, **kwargs)
            if "has been deleted" in msg or "deleted or donated" in msg:
                raise ValueError(
                    f"{where}: an input array was donated to an earlier call of this step, which consumed "
                    "its buffer; rebind the results (params, state, opt_state, metrics = step(params, state, "
                    "opt_state, batch, key)) and pass those, or build the step with donate=False"
                ) from None
            raise

    for attr in ("lower", "trace", "eval_shape"):
        if hasattr(compiled, attr):
            setattr(run, attr, getattr(compiled, attr))
    return run


def eval_step_fn(
    model: Layer, loss: str | Callable[..., Array], *, metrics: Mapping[str, Callable[..., Array]] | None = None
) -> Callable:
    """The un-jitted evaluation step ``(params, state, batch) -> metrics`` (``train=False``, no key)."""
    if not isinstance(model, Layer):
        raise TypeError(f"model must be a Layer, got {type(model).__name__}")
    loss_fn = get_loss(loss)
    metrics = check_metrics(metrics)

    def evaluate(params, state, batch):
        x, y, where = _unpack(batch)
        out, _ = model.apply(params, state, x, train=False, mask=where)
        logs = {"loss": loss_fn(out, y, where)}
        for name, fn in metrics.items():
            logs[name] = fn(out, y, where)
        return logs

    return evaluate


def make_eval_step(
    model: Layer,
    loss: str | Callable[..., Array],
    *,
    metrics: Mapping[str, Callable[..., Array]] | None = None,
    jit: bool = True,
) -> Callable:
    """A compiled evaluation step ``(params, state, batch) -> metrics`` (``train=False``, no key)."""
    evaluate = eval_step_fn(model, loss, metrics=metrics)
    return jax.jit(evaluate) if jit else evaluate
