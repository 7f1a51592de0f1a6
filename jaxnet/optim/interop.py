"""The optax protocol, both ways, without importing optax.

optax's ``GradientTransformation`` and ``GradientTransformationExtraArgs`` are pairs
``init(params) -> state`` and ``update(updates, state, params=None, **extra) -> (updates, state)``:
the protocol of :class:`~jaxnet.types.Optimizer`. So

* an optax transform is accepted wherever a jaxnet optimizer is (``make_train_step``,
  ``make_train_epoch``, ``fit``, ``fit_ensemble``, :func:`~jaxnet.optim.chain`,
  :func:`~jaxnet.optim.switch`, :func:`~jaxnet.optim.freeze` ...): :func:`as_optimizer`
  reads its ``init`` and ``update`` by duck typing;
* a jaxnet optimizer goes into ``optax.chain`` and ``optax.apply_updates`` as it is (a
  NamedTuple ``(init, update)``, which optax wraps like any transform without extra args).

optax transforms keep their hyperparameters in Python closures, so a new optax object is a new
compiled program; ``optax.inject_hyperparams`` moves them into the state.
"""

from __future__ import annotations

from jaxnet.types import Optimizer


def is_optimizer(obj) -> bool:
    """True for anything with callable ``init`` and ``update`` attributes (jaxnet or optax)."""
    return callable(getattr(obj, "init", None)) and callable(getattr(obj, "update", None))


def as_optimizer(obj, *, owner: str = "optimizer") -> Optimizer:
    """``obj`` as a jaxnet :class:`~jaxnet.types.Optimizer` (itself if it already is one).

    Args:
      obj: a jaxnet optimizer, an optax ``GradientTransformation``/``GradientTransformationExtraArgs``,
        or any object with ``init(params)`` and ``update(grads, state, params)``.
      owner: how errors name the argument, e.g. ``"fit: optimizer"``.

    Returns:
      ``Optimizer(obj.init, obj.update)``: the same functions, so the same compiled program
      for the same object.

    Raises:
      TypeError: if ``obj`` lacks a callable ``init`` or ``update``.
    """
    if isinstance(obj, Optimizer):
        return obj
    if is_optimizer(obj):
        return Optimizer(obj.init, obj.update)
    hint = f"; build one, e.g. jaxnet.optim.{obj}(1e-3)" if isinstance(obj, str) else ""
    raise TypeError(
        f"{owner} must be an Optimizer: an object with init(params) and update(grads, state, params) "
        f"(a jaxnet optimizer or an optax GradientTransformation), got {obj!r:.80} ({type(obj).__name__}){hint}"
    )
