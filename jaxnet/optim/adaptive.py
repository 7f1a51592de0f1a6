"""Adaptive learning rates: Adagrad, RMSprop, Adam and AdamW, following ``torch.optim`` exactly.

``t`` is the step number (1 at the first update), ``g`` the gradient and ``lr`` the learning
rate at this step (a schedule is evaluated at ``t - 1``, the state's ``count``). Every rule
puts ``eps`` outside the square root, as PyTorch does; ``eps_in_sqrt`` (RMSprop) and
``eps_root`` (Adam) give the chapter's form with epsilon inside it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxnet.optim.base import tree_map_n
from jaxnet.optim.checks import check_float_params, check_state, stored_names
from jaxnet.optim.hyperparams import Hyperparameters, Schedule, cast, check_hyperparameter, current
from jaxnet.optim.program import schedule_key, with_program_key
from jaxnet.types import Array, Optimizer


def _zeros(params, dtype=None):
    return jax.tree_util.tree_map(lambda p: jnp.zeros(jnp.shape(p), dtype or jnp.result_type(p)), params)


def _check_dtype(owner: str, dtype):
    """``None`` or a floating dtype for the accumulators (e.g. float32 moments for bfloat16 params)."""
    if dtype is None:
        return None
    try:
        d = jnp.dtype(dtype)
    except TypeError:
        raise TypeError(
            f"{owner}: accumulator_dtype must be a float dtype such as jnp.float32, got {dtype!r}"
        ) from None
    if not jnp.issubdtype(d, jnp.floating):
        raise TypeError(f"{owner}: accumulator_dtype must be a float dtype such as jnp.float32, got {d.name}")
    return d


class AdagradState(NamedTuple):
    """State of :func:`adagrad`: ``sum`` is the running sum of squared gradients; ``hyper`` holds
    ``learning_rate`` (unless scheduled), ``lr_decay`` and ``eps``, also readable as properties."""

    count: jax.Array  # type: ignore[assignment]  # a field named like tuple.count (as in optax): the field wins
    sum: Any
    hyper: Hyperparameters

    @property
    def learning_rate(self) -> jax.Array | None:
        """``learning_rate`` from ``hyper`` (None if scheduled or absent)."""
        return self.hyper.get("learning_rate")

    @property
    def lr_decay(self) -> jax.Array | None:
        """``lr_decay`` from ``hyper`` (None if scheduled or absent)."""
        return self.hyper.get("lr_decay")

    @property
    def eps(self) -> jax.Array | None:
        """``eps`` from ``hyper`` (None if scheduled or absent)."""
        return self.hyper.get("eps")


def adagrad(
    learning_rate: float | Array | Schedule = 0.01,
    lr_decay: float = 0.0,
    initial_accumulator_value: float = 0.0,
    eps: float = 1e-10,
    accumulator_dtype=None,
) -> Optimizer:
    """Adagrad as ``torch.optim.Adagrad``: ``s <- s + g^2``, ``w <- w - lr/(1 + (t-1) lr_decay) g/(sqrt(s) + eps)``.

    The chapter writes ``lr / sqrt(s + eps)``; with PyTorch's tiny default ``eps`` the two
    differ only where ``s`` is about ``eps``. ``accumulator_dtype`` (e.g. ``jnp.float32`` for
    bfloat16 params) keeps ``s`` and the arithmetic in that dtype; the update is cast back.

    Raises:
      ValueError: for a negative or non-finite ``learning_rate``, ``lr_decay``,
        ``initial_accumulator_value`` or ``eps``.
    """
    lr = check_hyperparameter("adagrad", "learning_rate", learning_rate, allow_schedule=True)
    decay = check_hyperparameter("adagrad", "lr_decay", lr_decay)
    acc0 = check_hyperparameter("adagrad", "initial_accumulator_value", initial_accumulator_value)
    eps_ = check_hyperparameter("adagrad", "eps", eps)
    acc_dtype = _check_dtype("adagrad", accumulator_dtype)

    names = stored_names(learning_rate=lr, lr_decay=decay, eps=eps_)

    def init(params):
        check_float_params("adagrad", params)
        s = jax.tree_util.tree_map(lambda p: jnp.full(jnp.shape(p), acc0, acc_dtype or jnp.result_type(p)), params)
        return AdagradState(
            jnp.zeros([], jnp.int32), s, Hyperparameters.pack(learning_rate=lr, lr_decay=decay, eps=eps_)
        )

    def update(grads, state, params=None):
        del params
        check_state("adagrad", state, AdagradState, grads, hyper_names=names, trees={"sum": True})
        hp = state.hyper  # each value is read once here, not once per leaf
        rate = current(hp.get("learning_rate"), lr, state.count) / (1.0 + state.count * hp["lr_decay"])
        eps = hp["eps"]

        def leaf(g, s):
            gd = g.astype(s.dtype)  # a no-op unless accumulator_dtype differs from the params'
            s = s + gd * gd
            return (-cast(rate, s.dtype) * gd / (jnp.sqrt(s) + cast(eps, s.dtype))).astype(g.dtype), s

        updates, s = tree_map_n(leaf, 2, grads, state.sum)
        return updates, state._replace(count=state.count + 1, sum=s)

    with_program_key(update, "adagrad", schedule_key(lr))
    return Optimizer(init, update)


class RmspropState(NamedTuple):
    """State of :func:`rmsprop`: ``nu`` averages ``g^2``; ``mu`` averages ``g`` (centered only);
    ``trace`` is the momentum buffer (only with momentum); ``hyper`` holds ``learning_rate``
    (unless scheduled), ``alpha``, ``eps`` and ``momentum`` (only with momentum), also readable
    as properties."""

    count: jax.Array  # type: ignore[assignment]  # a field named like tuple.count (as in optax): the field wins
    nu: Any
    mu: Any
    trace: Any
    hyper: Hyperparameters

    @property
    def learning_rate(self) -> jax.Array | None:
        """``learning_rate`` from ``hyper`` (None if scheduled or absent)."""
        return self.hyper.get("learning_rate")

    @property
    def alpha(self) -> jax.Array | None:
        """``alpha`` from ``hyper`` (None if scheduled or absent)."""
        return self.hyper.get("alpha")

    @property
    def eps(self) -> jax.Array | None:
        """``eps`` from ``hyper`` (None if scheduled or absent)."""
        return self.hyper.get("eps")

    @property
    def momentum(self) -> jax.Array | None:
        """``momentum`` from ``hyper`` (None if scheduled or absent)."""
        return self.hyper.get("momentum")


def rmsprop(
    learning_rate: float | Array | Schedule = 0.01,
    alpha: float = 0.99,
    eps: float = 1e-8,
    momentum: float = 0.0,
    centered: bool = False,
    eps_in_sqrt: bool = False,
    accumulator_dtype=None,
) -> Optimizer:
    """RMSprop as ``torch.optim.RMSprop``.

    ``nu <- alpha nu + (1 - alpha) g^2``; the denominator is ``d = sqrt(nu) + eps``
    (``sqrt(nu - mu^2) + eps`` when centered, with ``mu <- alpha mu + (1 - alpha) g``);
    then ``w <- w - lr g/d``, or with momentum ``b <- momentum b + g/d; w <- w - lr b``.
    ``eps_in_sqrt=True`` uses ``d = sqrt(nu + eps)``, the chapter's ``lr / sqrt(alpha_i + eps_0)``.
    ``accumulator_dtype`` (e.g. ``jnp.float32`` for bfloat16 params) keeps ``nu``, ``mu``, the
    momentum buffer and the arithmetic in that dtype; the update is cast back.

    Raises:
      ValueError: for a negative or non-finite ``learning_rate``, ``eps`` or ``momentum``, or
        ``alpha`` outside [0, 1).
    """
    lr = check_hyperparameter("rmsprop", "learning_rate", learning_rate, allow_schedule=True)
    alpha_ = check_hyperparameter("rmsprop", "alpha", alpha, high=1.0)
    eps_ = check_hyperparameter("rmsprop", "eps", eps)
    mom = check_hyperparameter("rmsprop", "momentum", momentum)
    for flag, value in (("centered", centered), ("eps_in_sqrt", eps_in_sqrt)):
        if not isinstance(value, bool):
            raise TypeError(f"rmsprop: {flag} must be a bool, got {value!r}")
    use_momentum = not (isinstance(mom, float) and mom == 0.0)
    acc_dtype = _check_dtype("rmsprop", accumulator_dtype)
    names = (
        stored_names(learning_rate=lr, alpha=alpha_, eps=eps_, momentum=mom)
        if use_momentum
        else stored_names(learning_rate=lr, alpha=alpha_, eps=eps_)
    )

    def init(params):
        check_float_params("rmsprop", params)
        hyper = (
            Hyperparameters.pack(learning_rate=lr, alpha=alpha_, eps=eps_, momentum=mom)
            if use_momentum
            else Hyperparameters.pack(learning_rate=lr, alpha=alpha_, eps=eps_)
        )
        return RmspropState(
            jnp.zeros([], jnp.int32),
            _zeros(params, acc_dtype),
            _zeros(params, acc_dtype) if centered else None,
            _zeros(params, acc_dtype) if use_momentum else None,
            hyper,
        )

    def update(grads, state, params=None):
        del params
        check_state(
            "rmsprop",
            state,
            RmspropState,
            grads,
            hyper_names=names,
            trees={"nu": True, "mu": centered, "trace": use_momentum},
        )
        hp = state.hyper  # each value is read once here, not once per leaf
        rate = current(hp.get("learning_rate"), lr, state.count)
        alpha, eps, mom = hp["alpha"], hp["eps"], hp.get("momentum")

        def leaf(g_in, nu, mu, b):
            g = g_in.astype(nu.dtype)  # a no-op unless accumulator_dtype differs from the params'
            # 1 - alpha is formed in the state's precision: in bfloat16, alpha itself rounds badly.
            a, ca, e = cast(alpha, g.dtype), cast(1 - alpha, g.dtype), cast(eps, g.dtype)
            nu = a * nu + ca * g * g
            var = nu
            if centered:
                mu = a * mu + ca * g
                var = nu - mu * mu
            d = jnp.sqrt(var + e) if eps_in_sqrt else jnp.sqrt(var) + e
            step = g / d
            if use_momentum:
                b = cast(mom, g.dtype) * b + step
                step = b
            return (-cast(rate, g.dtype) * step).astype(g_in.dtype), nu, mu, b

        none = jax.tree_util.tree_map(lambda _: None, grads)
        updates, nu, mu, b = tree_map_n(
            leaf, 4, grads, state.nu, state.mu if centered else none, state.trace if use_momentum else none
        )
        return updates, state._replace(
            count=state.count + 1, nu=nu, mu=mu if centered else None, trace=b if use_momentum else None
        )

    with_program_key(update, "rmsprop", centered, eps_in_sqrt, use_momentum, schedule_key(lr))
    return Optimizer(init, update)


class AdamState(NamedTuple):
    """State of :func:`adam` and :func:`adamw`: first moment ``mu``, second moment ``nu``,
    their running maximum ``nu_max`` (AMSGrad only), and ``hyper``: ``learning_rate`` (unless
    scheduled), ``b1``, ``b2``, ``eps``, ``eps_root`` and ``weight_decay`` (AdamW only), also
    readable as properties."""

    count: jax.Array  # type: ignore[assignment]  # a field named like tuple.count (as in optax): the field wins
    mu: Any
    nu: Any
    nu_max: Any
    hyper: Hyperparameters

    @property
    def learning_rate(self) -> jax.Array | None:
        """``learning_rate`` from ``hyper`` (None if scheduled or absent)."""
        return self.hyper.get("learning_rate")

    @property
    def b1(self) -> jax.Array | None:
        """``b1`` from ``hyper`` (None if scheduled or absent)."""
        return self.hyper.get("b1")

    @property
    def b2(self) -> jax.Array | None:
        """``b2`` from ``hyper`` (None if scheduled or absent)."""
        return self.hyper.get("b2")

    @property
    def eps(self) -> jax.Array | None:
        """``eps`` from ``hyper`` (None if scheduled or absent)."""
        return self.hyper.get("eps")

    @property
    def eps_root(self) -> jax.Array | None:
        """``eps_root`` from ``hyper`` (None if scheduled or absent)."""
        return self.hyper.get("eps_root")

    @property
    def weight_decay(self) -> jax.Array | None:
        """``weight_decay`` from ``hyper`` (None if scheduled or absent)."""
        return self.hyper.get("weight_decay")


def _adam(owner, learning_rate, b1, b2, eps, eps_root, amsgrad, weight_decay, accumulator_dtype=None):
    lr = check_hyperparameter(owner, "learning_rate", learning_rate, allow_schedule=True)
    b1_ = check_hyperparameter(owner, "b1", b1, high=1.0)
    b2_ = check_hyperparameter(owner, "b2", b2, high=1.0)
    eps_ = check_hyperparameter(owner, "eps", eps)
    root = check_hyperparameter(owner, "eps_root", eps_root)
    if not isinstance(amsgrad, bool):
        raise TypeError(f"{owner}: amsgrad must be a bool, got {amsgrad!r}")
    wd = None if weight_decay is None else check_hyperparameter(owner, "weight_decay", weight_decay)
    acc_dtype = _check_dtype(owner, accumulator_dtype)
    decay_spec = {} if wd is None else {"weight_decay": wd}
    names = stored_names(learning_rate=lr, b1=b1_, b2=b2_, eps=eps_, eps_root=root, **decay_spec)

    def init(params):
        check_float_params(owner, params)
        decay = {} if wd is None else {"weight_decay": wd}
        hyper = Hyperparameters.pack(learning_rate=lr, b1=b1_, b2=b2_, eps=eps_, eps_root=root, **decay)
        return AdamState(
            jnp.zeros([], jnp.int32),
            _zeros(params, acc_dtype),
            _zeros(params, acc_dtype),
            _zeros(params, acc_dtype) if amsgrad else None,
            hyper,
        )

    def update(grads, state, params=None):
        check_state(
            owner, state, AdamState, grads, hyper_names=names, trees={"mu": True, "nu": True, "nu_max": amsgrad}
        )
        if wd is not None and params is None:
            raise ValueError(f"{owner}: update needs params for the decoupled weight decay, got params=None")
        hp = state.hyper  # each value is read once here, not once per leaf
        rate = current(hp.get("learning_rate"), lr, state.count)
        b1, b2, eps, eps_root = hp["b1"], hp["b2"], hp["eps"], hp["eps_root"]
        t = (state.count + 1).astype(b1.dtype)
        # Both bias corrections as one 2-vector: one small kernel per step instead of two.
        scale = jnp.stack([-rate, jnp.ones_like(rate)]) / (1 - jnp.stack([b1, b2]) ** t)
        neg_step, inv_bc2 = scale[0], scale[1]  # -lr / (1 - b1^t); nu_hat = nu / (1 - b2^t)
        decay = rate * hp["weight_decay"] if wd is not None else None
        none = jax.tree_util.tree_map(lambda _: None, grads)

        def leaf(g_in, m, v, vmax, p):
            g = g_in.astype(m.dtype)  # a no-op unless accumulator_dtype differs from the params'
            # 1 - b is formed in the state's precision before the cast: in bfloat16, b2 = 0.999
            # rounds to 1, and 1 - cast(b2) would be 0 (the second moment would never grow).
            c1, c2 = cast(b1, g.dtype), cast(b2, g.dtype)
            d1, d2 = cast(1 - b1, g.dtype), cast(1 - b2, g.dtype)
            m = c1 * m + d1 * g
            v = c2 * v + d2 * g * g
            if amsgrad:
                vmax = jnp.maximum(vmax, v)
            vhat = (vmax if amsgrad else v) * cast(inv_bc2, g.dtype)
            u = cast(neg_step, g.dtype) * m / (jnp.sqrt(vhat + cast(eps_root, g.dtype)) + cast(eps, g.dtype))
            if decay is not None:  # decoupled: p <- p (1 - lr wd), then the Adam step
                u = u - cast(decay, g.dtype) * p.astype(g.dtype)
            return u.astype(g_in.dtype), m, v, vmax

        updates, mu, nu, vmax = tree_map_n(
            leaf, 4, grads, state.mu, state.nu, state.nu_max if amsgrad else none, params if wd is not None else none
        )
        return updates, state._replace(count=state.count + 1, mu=mu, nu=nu, nu_max=vmax if amsgrad else None)

    with_program_key(update, owner, amsgrad, wd is None, schedule_key(lr))
    return Optimizer(init, update)


def adam(
    learning_rate: float | Array | Schedule = 0.001,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    amsgrad: bool = False,
    accumulator_dtype=None,
) -> Optimizer:
    """Adam as ``torch.optim.Adam``.

    ``mu <- b1 mu + (1 - b1) g``, ``nu <- b2 nu + (1 - b2) g^2`` (``b1``: first moment,
    ``b2``: second moment), ``w <- w - lr/(1 - b1^t) mu / (sqrt(nu/(1 - b2^t) + eps_root) + eps)``.
    With ``amsgrad`` the running maximum of ``nu`` replaces ``nu``. The chapter's form, with
    epsilon inside the root, is ``adam(lr, eps=0, eps_root=eps0)`` (its beta_1 is our ``b2``).
    ``accumulator_dtype`` (e.g. ``jnp.float32`` for bfloat16 params) keeps the moments and the
    arithmetic in that dtype; the update is cast back to the params' dtype.

    Raises:
      ValueError: for a negative or non-finite ``learning_rate``, ``eps`` or ``eps_root``, or
        ``b1``/``b2`` outside [0, 1).
    """
    return _adam("adam", learning_rate, b1, b2, eps, eps_root, amsgrad, None, accumulator_dtype)


def adamw(
    learning_rate: float | Array | Schedule = 0.001,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    amsgrad: bool = False,
    weight_decay: float | Array | Schedule = 1e-2,
    accumulator_dtype=None,
) -> Optimizer:
    """AdamW as ``torch.optim.AdamW``: ``w <- w (1 - lr weight_decay)``, then the :func:`adam` step.

    The decay is decoupled from the gradient (it does not pass through the moments); the
    update needs ``params``.

    Raises:
      ValueError: as :func:`adam`, and for a negative or non-finite ``weight_decay``.
    """
    return _adam("adamw", learning_rate, b1, b2, eps, eps_root, amsgrad, weight_decay, accumulator_dtype)
