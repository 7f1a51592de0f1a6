"""Compiled training and evaluation steps.

A training step is one pure function::

    step(params, state, opt_state, batch, key) -> (params, state, opt_state, metrics)

with ``batch = (x, y)`` or ``(x, y, where)`` (``where``: per-sample weights or a
padding mask, passed to the loss and metrics). ``metrics`` is a dict of scalar arrays,
always containing ``"loss"`` (the data loss plus any penalty).
"""
from __future__ import annotations

from typing import Callable, Mapping

import jax

from jaxnet.nn.losses import get_loss
from jaxnet.optim.base import apply_updates
from jaxnet.types import Layer, Optimizer


def _unpack(batch):
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
        raise TypeError(f"batch must be a tuple (x, y) or (x, y, where), got {type(batch).__name__}")
    return (batch[0], batch[1], batch[2] if len(batch) == 3 else None)


def _check(model, optimizer):
    if not isinstance(model, Layer):
        raise TypeError(f"model must be a Layer, got {type(model).__name__}")
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be an Optimizer(init, update), got {type(optimizer).__name__}")


def train_step_fn(
    model: Layer,
    loss,
    optimizer: Optimizer,
    *,
    penalty: Callable | None = None,
    metrics: Mapping[str, Callable] | None = None,
):
    """The un-jitted training step (for use inside ``lax.scan`` or ``jax.vmap``).

    ``penalty(params) -> scalar`` is added to the loss (e.g. an L2 penalty);
    ``metrics`` maps names to ``fn(outputs, y, where)`` evaluated on the batch's outputs.
    """
    _check(model, optimizer)
    loss_fn = get_loss(loss)
    metrics = dict(metrics or {})

    def objective(params, state, x, y, where, key):
        out, new_state = model.apply(params, state, x, key=key, train=True)
        value = loss_fn(out, y, where)
        if penalty is not None:
            value = value + penalty(params)
        return value, (out, new_state)

    def step(params, state, opt_state, batch, key):
        x, y, where = _unpack(batch)
        (value, (out, state)), grads = jax.value_and_grad(objective, has_aux=True)(params, state, x, y, where, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = apply_updates(params, updates)
        logs = {"loss": value}
        for name, fn in metrics.items():
            logs[name] = fn(out, y, where)
        return params, state, opt_state, logs

    return step


def make_train_step(model: Layer, loss, optimizer: Optimizer, *, penalty=None, metrics=None, jit: bool = True):
    """A ``jax.jit``-compiled training step; see :func:`train_step_fn` for the arguments."""
    step = train_step_fn(model, loss, optimizer, penalty=penalty, metrics=metrics)
    return jax.jit(step) if jit else step


def make_eval_step(model: Layer, loss, *, metrics=None, jit: bool = True):
    """A compiled evaluation step ``(params, state, batch) -> metrics`` (``train=False``, no key)."""
    if not isinstance(model, Layer):
        raise TypeError(f"model must be a Layer, got {type(model).__name__}")
    loss_fn = get_loss(loss)
    metrics = dict(metrics or {})

    def evaluate(params, state, batch):
        x, y, where = _unpack(batch)
        out, _ = model.apply(params, state, x, train=False)
        logs = {"loss": loss_fn(out, y, where)}
        for name, fn in metrics.items():
            logs[name] = fn(out, y, where)
        return logs

    return jax.jit(evaluate) if jit else evaluate
