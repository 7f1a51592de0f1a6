"""Ensembles (§4.4.3): several networks whose averaged predictions beat their average member.

Members that share an architecture train as ONE vmapped program: their params are
stacked along a leading member axis and every epoch runs for all of them at once.
They may differ in

* the init key (member ``k`` uses ``fold_in(key, k)`` for init, shuffles and dropout),
* the data they see: ``subsets="bootstrap"`` (each member's sample weights are the
  counts of ``n`` draws with replacement) or ``"disjoint"`` (each sample belongs to one
  member), or any ``[K, n]`` weight array. The weights multiply the per-sample loss,
  so a member never learns from a sample of weight 0; the batches keep their shape.
* hyperparameters stored in the optimizer state, e.g. ``hyperparams={"learning_rate": [...]}``.

Members of different architectures are a plain list of ``(model, params, state)``;
:func:`average_probabilities` and :func:`ensemble_report` accept both forms.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxnet.optim.hyperparams import replace_hyperparameter
from jaxnet.optim.interop import as_optimizer
from jaxnet.train import epoch as E
from jaxnet.train.distributed import check_mesh, replicate_global
from jaxnet.train.fit import _positive_int, _Progress, check_data, check_model_fits, pad_batches, split_validation
from jaxnet.train.history import EarlyStopping, History
from jaxnet.train.precision import get_policy
from jaxnet.train.step import check_metrics
from jaxnet.types import Array, Layer, Optimizer, OptState, Params, State, check_key


class EnsembleResult(NamedTuple):
    """What :func:`fit_ensemble` returns: member-stacked trees (leading axis K) and one history per member."""

    params: Any
    state: Any
    opt_state: Any
    histories: list
    epoch: int


def stack(trees: Sequence) -> Any:
    """Stack equally shaped pytrees along a new leading (member) axis."""
    return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *trees)


def unstack(tree: Any, k: int) -> Any:
    """Member ``k`` of a member-stacked pytree."""
    return jax.tree_util.tree_map(lambda a: a[k], tree)


def member_weights(key: Array, members: int, n: int, subsets: str | ArrayLike | None = None) -> jax.Array:
    """Per-member sample weights ``[members, n]`` (float32) for ``subsets``.

    ``None``: all ones. ``"bootstrap"``: member k's weight of sample i is how often i
    was drawn in ``n`` draws with replacement (about 63% of samples get weight > 0).
    ``"disjoint"``: a random partition into ``members`` near-equal parts, weights 0/1.
    An array ``[members, n]`` of non-negative weights is used as given.
    """
    if subsets is None:
        return jnp.ones((members, n), jnp.float32)
    if isinstance(subsets, str):
        check_key("member_weights", key)
        if subsets == "bootstrap":
            draws = jax.vmap(lambda k: jax.random.randint(k, (n,), 0, n))(jax.random.split(key, members))
            return jax.vmap(lambda d: jnp.bincount(d, length=n))(draws).astype(jnp.float32)
        if subsets == "disjoint":
            if members > n:
                raise ValueError(f"fit_ensemble: {members} disjoint subsets need at least {members} samples, got {n}")
            owner = jax.random.permutation(key, n) % members
            return (owner[None, :] == jnp.arange(members)[:, None]).astype(jnp.float32)
        raise ValueError(
            f"fit_ensemble: subsets must be None, 'bootstrap', 'disjoint' or a [K, n] array, got {subsets!r}"
        )
    w = jnp.asarray(subsets, jnp.float32)
    if w.shape != (members, n):
        raise ValueError(f"fit_ensemble: subsets as weights must have shape ({members}, {n}), got {w.shape}")
    if not bool(jnp.all(w >= 0)) or not bool(jnp.all(jnp.sum(w, axis=1) > 0)):
        raise ValueError("fit_ensemble: subset weights must be >= 0 with at least one positive weight per member")
    return w


def set_member_hyperparameter(opt_state: OptState, name: str, values: ArrayLike) -> OptState:
    """Set the hyperparameter ``name`` of a member-stacked optimizer state to one value per member.

    ``values`` has shape ``[K]`` (or broadcasts to the stacked shape); every hyperparameter
    called ``name`` changes. (:func:`jaxnet.optim.set_hyperparameter` sets one scalar in an
    unstacked state.)

    Raises:
      ValueError: if no hyperparameter of that name is stored, if it follows a schedule, or
        for non-finite or negative values.
    """
    values = jnp.asarray(values, jnp.float32)
    if not bool(jnp.all(jnp.isfinite(values))) or bool(jnp.any(values < 0)):
        raise ValueError(f"hyperparams: {name} values must be finite and >= 0, got {values.tolist()}")
    return replace_hyperparameter(
        opt_state, name, lambda old: jnp.broadcast_to(values.astype(old.dtype), old.shape), owner="hyperparams"
    )


def fit_ensemble(
    model: Layer,
    loss: str | Callable[..., Array],
    optimizer: Optimizer,
    train_data: tuple[Array, Array],
    *,
    members: int,
    epochs: int,
    batch_size: int,
    key: Array,
    subsets: str | ArrayLike | None = None,
    hyperparams: dict | None = None,
    validation: tuple[Array, Array] | float | None = None,
    metrics: Mapping[str, Callable[..., Array]] | None = None,
    early_stopping: EarlyStopping | None = None,
    progress: bool = True,
    penalty: Callable[[Params], Array] | None = None,
    augment: Callable[[Array, Array], Array] | None = None,
    epochs_per_call: int = 1,
    eval_batch_size: int = 1024,
    precision=None,
    mesh=None,
) -> EnsembleResult:
    """Train ``members`` copies of ``model`` as one vmapped program; see the module docstring.

    Arguments as in :func:`~jaxnet.train.fit.fit`, plus ``members`` (K), ``subsets``
    (``None``, ``"bootstrap"``, ``"disjoint"`` or ``[K, n]`` weights) and ``hyperparams``
    (hyperparameter name -> K values, see :func:`set_member_hyperparameter`). Each member stops early on its own.
    ``precision`` and ``mesh`` as in ``fit``: with a mesh every member's batch is split over its
    ``"data"`` axis (members stay whole on every device).

    Returns:
      An :class:`EnsembleResult` with params/state/opt_state stacked along axis 0.
    """
    where = "fit_ensemble"
    if not isinstance(model, Layer):
        raise TypeError(f"{where}: model must be a Layer (for different architectures train each and use a list)")
    optimizer = as_optimizer(optimizer, owner=f"{where}: optimizer")
    check_metrics(metrics)
    members = _positive_int(where, "members", members)
    epochs = _positive_int(where, "epochs", epochs)
    batch_size = _positive_int(where, "batch_size", batch_size)
    epochs_per_call = _positive_int(where, "epochs_per_call", epochs_per_call)
    eval_batch_size = _positive_int(where, "eval_batch_size", eval_batch_size)
    check_key(where, key)
    if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
        raise TypeError(f"{where}: early_stopping must be an EarlyStopping(...), got {early_stopping!r}")
    if precision is not None:
        precision = get_policy(precision)
    if mesh is not None:
        check_mesh(where, mesh, batch_size)
    x, y = check_data(where, train_data)
    val = None
    if isinstance(validation, float):
        (x, y), val = split_validation(jax.random.fold_in(key, 1 << 20), x, y, validation)
    elif validation is not None:
        val = check_data(where, validation, name="validation")
    n = x.shape[0]
    if batch_size > n:
        raise ValueError(f"{where}: batch_size {batch_size} is larger than the {n} training samples")
    keys = [jax.random.fold_in(key, k) for k in range(members)]
    inits = [model.init(jax.random.fold_in(k, 0), (-1, *x.shape[1:]))[1:] for k in keys]
    check_model_fits(where, model, loss, inits[0][0], inits[0][1], x, y)
    params, state = stack([p for p, _ in inits]), stack([s for _, s in inits])
    opt_state = stack([optimizer.init(p) for p, _ in inits])
    for name, values in dict(hyperparams or {}).items():
        values = jnp.asarray(values, jnp.float32)
        if values.shape != (members,):
            raise ValueError(
                f"{where}: hyperparams[{name!r}] must have {members} values (one per member), got shape {values.shape}"
            )
        opt_state = set_member_hyperparameter(opt_state, name, values)
    w = member_weights(jax.random.fold_in(key, (1 << 20) + 1), members, n, subsets)

    # Without subsets every weight is 1: the plain mean loss is the same, without gathering weights.
    cfg = E.make_config(
        model,
        loss,
        optimizer,
        n=n,
        batch_size=batch_size,
        penalty=penalty,
        augment=augment,
        metrics=metrics,
        weighted=subsets is not None,
        has_val=val is not None,
        early_stopping=early_stopping,
        precision=precision,
        mesh=mesh,
    )
    columns = ["loss", *sorted(dict(metrics or {}))]
    columns += [f"val_{c}" for c in columns] if val is not None else []
    if early_stopping is not None and early_stopping.monitor not in columns:
        raise ValueError(f"{where}: early_stopping monitors {early_stopping.monitor!r}; recorded: {columns}")
    carry = stack(
        [E.initial_carry(cfg, unstack(params, k), unstack(state, k), unstack(opt_state, k)) for k in range(members)]
    )
    train_keys = jnp.stack([jax.random.fold_in(k, 2) for k in keys])
    val_b = pad_batches(val[0], val[1], eval_batch_size) if val is not None else None
    place = (lambda t: t) if mesh is None else (lambda t: replicate_global(t, mesh))
    carry, x, y, w, val_b, train_keys = place((carry, x, y, w, val_b, train_keys))
    histories = [History() for _ in range(members)]
    bar = _Progress(progress, epochs, 0)
    done = 0
    try:
        for start in range(0, epochs, epochs_per_call):
            es = jnp.arange(start, start + epochs_per_call, dtype=jnp.int32)
            t0 = time.perf_counter()
            carry, (logs, ran) = E.run_members_jit(cfg, carry, x, y, w, val_b, train_keys, *place((es, es < epochs)))
            logs, ran = jax.device_get((logs, ran))  # [members, chunk]
            dt = (time.perf_counter() - t0) / max(int(ran.any(axis=0).sum()), 1)
            for j in range(ran.shape[1]):
                for m in np.flatnonzero(ran[:, j]):
                    histories[m].records.append(
                        {"epoch": start + j + 1, **{c: float(logs[c][m, j]) for c in columns}, "time": dt}
                    )
                if ran[:, j].any():
                    done = start + j + 1
                    bar.update({"epoch": done, **{c: float(np.mean(logs[c][ran[:, j], j])) for c in columns}})
            if bool(jnp.all(carry.halted | carry.stopped)):
                break
    finally:
        bar.close()
    params, state = carry.params, carry.state
    for k, h in enumerate(histories):
        if bool(carry.halted[k]):
            h.stop_reason = "nonfinite"
            h.nonfinite = {"epoch": int(carry.bad_epoch[k]) + 1, "step": int(carry.bad_step[k])}
        elif bool(carry.stopped[k]):
            h.stop_reason = "early_stopping"
    if early_stopping is not None and early_stopping.restore_best:
        ok = carry.best_epoch >= 0
        params, state = jax.tree_util.tree_map(
            lambda b, c: jnp.where(ok.reshape((-1,) + (1,) * (c.ndim - 1)), b, c), carry.best, (params, state)
        )
        for k, h in enumerate(histories):
            h.best_epoch = int(carry.best_epoch[k]) + 1 if bool(ok[k]) else None
    return EnsembleResult(params, state, carry.opt_state, histories, done)


def _probabilities(out, outputs: str):
    if outputs == "probabilities":
        return out
    if outputs != "logits":
        raise ValueError(f"outputs must be 'logits' or 'probabilities', got {outputs!r}")
    if out.shape[-1] == 1:  # one binary logit: P(class 1)
        p = jax.nn.sigmoid(out)
        return jnp.concatenate([1 - p, p], axis=-1)
    return jax.nn.softmax(out, axis=-1)


def member_probabilities(
    members: tuple[Layer, Params, State] | Sequence[tuple[Layer, Params, State]], x: Array, *, outputs: str = "logits"
) -> jax.Array:
    """Each member's class probabilities ``[K, batch, classes]`` on ``x`` (evaluation mode).

    ``members``: ``(model, stacked_params, stacked_state)`` for a vmapped ensemble, or a list
    of ``(model, params, state)`` (architectures may differ; class counts must agree).
    """
    if isinstance(members, tuple) and len(members) == 3 and isinstance(members[0], Layer):
        model, params, state = cast(tuple[Layer, Params, State], members)

        def f(p, s):
            return _probabilities(model.apply(p, s, x, train=False)[0], outputs)

        return jax.vmap(f)(params, state)
    if not members:
        raise ValueError("member_probabilities: members is empty")
    probs = []
    for i, m in enumerate(members):
        if not (isinstance(m, (tuple, list)) and len(m) == 3 and isinstance(m[0], Layer)):
            raise TypeError(
                f"member_probabilities: members[{i}] must be (model, params, state), got {type(m).__name__}"
            )
        probs.append(_probabilities(m[0].apply(m[1], m[2], x, train=False)[0], outputs))
    shapes = {p.shape for p in probs}
    if len(shapes) != 1:
        raise ValueError(f"member_probabilities: members disagree on the output shape: {sorted(shapes)}")
    return jnp.stack(probs)


def average_probabilities(
    members: tuple[Layer, Params, State] | Sequence[tuple[Layer, Params, State]], x: Array, *, outputs: str = "logits"
) -> jax.Array:
    """The ensemble's prediction: ``p(c | x) = (1/K) sum_k p_k(c | x)`` (mean of member probabilities)."""
    return jnp.mean(member_probabilities(members, x, outputs=outputs), axis=0)


def ensemble_report(
    members: tuple[Layer, Params, State] | Sequence[tuple[Layer, Params, State]],
    x: Array,
    y: Array,
    *,
    outputs: str = "logits",
) -> dict:
    """Accuracy of each member, of their mean, of the best member, of the ensemble, and the gain.

    Returns a dict with ``member_accuracy`` (list), ``mean_member``, ``best_member``,
    ``ensemble`` (accuracy of the averaged probabilities) and ``gain = ensemble - mean_member``.
    """
    probs = member_probabilities(members, x, outputs=outputs)
    y = jnp.asarray(y)
    member_acc = [float(a) for a in jnp.mean(jnp.argmax(probs, -1) == y[None], axis=1)]
    ens = float(jnp.mean(jnp.argmax(jnp.mean(probs, 0), -1) == y))
    mean_member = float(np.mean(member_acc))
    return {
        "member_accuracy": member_acc,
        "mean_member": mean_member,
        "best_member": max(member_acc),
        "ensemble": ens,
        "gain": ens - mean_member,
    }
