"""``fit``: train a model for some epochs, with validation, early stopping and a progress bar."""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet import _threefry as threefry
from jaxnet.nn.core import ParamsMismatchError
from jaxnet.nn.losses import get_loss
from jaxnet.optim.interop import as_optimizer
from jaxnet.train import epoch as E
from jaxnet.train.distributed import check_mesh, replicate_global
from jaxnet.train.history import EarlyStopping, History
from jaxnet.train.plateau import PlateauState, ReduceOnPlateau, current_value, plateau_step
from jaxnet.train.plateau import cut as cut_lr
from jaxnet.train.precision import get_policy
from jaxnet.train.step import check_metrics
from jaxnet.types import Array, Layer, Optimizer, OptState, Params, State, check_key


class NonFiniteWarning(RuntimeWarning):
    """Training met a NaN or infinite loss or parameter and stopped at the last finite values."""


class FitResult(NamedTuple):
    """What :func:`fit` returns.

    Attributes:
      params, state: the trained parameters and model state (the best epoch's, when early
        stopping restores them; the last finite ones after a non-finite value).
      opt_state: the optimizer state after the last epoch run (to resume training).
      history: a :class:`~jaxnet.train.history.History`.
      epoch: the number of epochs completed (pass it as ``initial_epoch`` to resume).

    ``params_epoch`` and ``opt_state_epoch`` say which epoch each part comes from: after
    ``early_stopping`` with ``restore_best`` they differ (best epoch vs last epoch), and
    saving ``params`` with ``opt_state`` would mix two epochs. Save ``params`` alone (for
    inference), or train with ``restore_best=False`` to resume from a consistent pair.
    """

    params: Any
    state: Any
    opt_state: Any
    history: History
    epoch: int

    @property
    def params_epoch(self) -> int:
        """The 1-based epoch whose end ``params`` and ``state`` are from (0 before any training)."""
        best = self.history.best_epoch
        return int(best) if best is not None else self.epoch

    @property
    def opt_state_epoch(self) -> int:
        """The 1-based epoch whose end ``opt_state`` is from (always the last one run; 0 before any training)."""
        return self.epoch

    @property
    def consistent(self) -> bool:
        """Whether ``params``, ``state`` and ``opt_state`` are from the same epoch (safe to save and resume)."""
        return self.params_epoch == self.opt_state_epoch


def check_data(where: str, data: Any, *, name: str = "train_data") -> tuple[Array, Array]:
    """``(x, y)`` as arrays with the same length, or an error naming ``where`` and ``name``."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"{where}: {name} must be a tuple (x, y), got {type(data).__name__}")
    x, y = (jnp.asarray(a) for a in data)
    if x.ndim < 1 or y.ndim < 1:
        raise ValueError(f"{where}: {name} x and y need a leading sample axis, got shapes {x.shape} and {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{where}: {name} x and y must have the same length, got {x.shape[0]} and {y.shape[0]}")
    if x.shape[0] == 0:
        raise ValueError(f"{where}: {name} is empty")
    return x, y


def _apply_eval(model_ref, params, state, x):
    return model_ref.obj.apply(params, state, x, train=False)[0]


def _apply_loss(loss_ref, outputs, y):
    return loss_ref.obj(outputs, y)


def _apply_update(optimizer_ref, params, opt_state):
    return optimizer_ref.obj.update(params, opt_state, params)  # the params stand in for gradients of their shape


_model_outputs = jax.jit(_apply_eval, static_argnums=0)
_optimizer_update = jax.jit(_apply_update, static_argnums=0)
_loss_value = jax.jit(_apply_loss, static_argnums=0)


def check_model_fits(
    where: str,
    model: Layer,
    loss: str | Callable[..., Array],
    params: Params,
    state: State,
    x: Array,
    y: Array,
    out_shape: Any = None,
) -> None:
    """Check, by abstract evaluation, that the model's outputs fit the loss and ``y``; check label ranges.

    Integer targets of shape ``outputs.shape[:-1]`` are class indices: they must lie in
    ``[0, C)`` for ``C >= 2`` outputs (``{0, 1}`` for one output). Checked on the host,
    because a compiled gather would silently clamp a bad label.
    """
    loss_fn = get_loss(loss)
    name = getattr(loss_fn, "__name__", repr(loss_fn))
    two = jax.ShapeDtypeStruct((min(2, x.shape[0]), *x.shape[1:]), x.dtype)  # a 2-sample batch, abstract
    try:
        # jitted with the model static: jax's trace cache answers a second fit of the same model at once
        out = _model_outputs.eval_shape(E.Ref(model), params, state, two)
    except ParamsMismatchError as e:  # the params/state are another model's: say that, not "the input"
        raise ParamsMismatchError(f"{where}: the params or state given (init=...) are not this model's: {e}") from None
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"{where}: the model {model.name} cannot take inputs of shape {tuple(x.shape[1:])} (per sample): {e}"
        ) from None
    try:
        _loss_value.eval_shape(E.Ref(loss_fn), out, jax.ShapeDtypeStruct((min(2, y.shape[0]), *y.shape[1:]), y.dtype))
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"{where}: the model's output shape {('batch', *out.shape[1:])} does not fit the "
            f"loss {name} with targets of shape {('batch', *y.shape[1:])}: {e}"
        ) from None
    if jnp.issubdtype(y.dtype, jnp.integer) and y.shape[1:] == out.shape[1:-1]:
        c = int(out.shape[-1])
        hi = 2 if c == 1 else c
        yn = np.asarray(y)
        lo_v, hi_v = int(yn.min()), int(yn.max())
        if lo_v < 0 or hi_v >= hi:
            raise ValueError(
                f"{where}: labels must lie in [0, {hi}) for a model with {c} output(s), "
                f"got labels from {lo_v} to {hi_v}"
            )


def _positive_int(where, name, v):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{where}: {name} must be a positive int, got {v!r}")
    if v <= 0:
        raise ValueError(f"{where}: {name} must be a positive int, got {v}")
    return int(v)


def split_validation(
    key: Array, x: Array, y: Array, fraction: float
) -> tuple[tuple[Array, Array], tuple[Array, Array]]:
    """Hold out ``fraction`` of ``(x, y)`` for validation, stratified by class for integer labels."""
    if not 0 < fraction < 1:
        raise ValueError(f"fit: validation as a fraction must lie in (0, 1), got {fraction!r}")
    from jaxnet import data as D

    if hasattr(D, "train_test_split"):
        stratify = bool(jnp.issubdtype(y.dtype, jnp.integer) and y.ndim == 1)
        (xt, yt), (xv, yv) = D.train_test_split(key, x, y, test=fraction, stratify=stratify)
        return (xt, yt), (xv, yv)
    perm = jax.random.permutation(key, x.shape[0])
    n_val = max(1, round(float(fraction) * x.shape[0]))
    return (x[perm[n_val:]], y[perm[n_val:]]), (x[perm[:n_val]], y[perm[:n_val]])


def pad_batches(x: Array, y: Array, batch_size: int) -> tuple[Array, Array, Array]:
    """``(xb [nb, B, ...], yb [nb, B, ...], mask [nb, B])``: ``(x, y)`` cut into padded batches."""
    n = x.shape[0]
    b = min(batch_size, n)
    nb = -(-n // b)
    pad = nb * b - n
    xp = jnp.concatenate([x, jnp.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
    yp = jnp.concatenate([y, jnp.zeros((pad, *y.shape[1:]), y.dtype)]) if pad else y
    mask = jnp.arange(nb * b) < n
    return xp.reshape((nb, b, *x.shape[1:])), yp.reshape((nb, b, *y.shape[1:])), mask.reshape(nb, b)


def evaluate(
    model: Layer,
    loss: str | Callable[..., Array],
    params: Params,
    state: State,
    data: tuple[Array, Array],
    *,
    metrics: Mapping[str, Callable[..., Array]] | None = None,
    batch_size: int = 1024,
) -> dict:
    """Mean loss and metrics of the model on ``data = (x, y)`` in evaluation mode, as Python floats.

    Runs as one compiled scan over padded batches of ``batch_size``.
    """
    x, y = check_data("evaluate", data, name="data")
    batch_size = _positive_int("evaluate", "batch_size", batch_size)
    cfg = E.make_config(model, loss, None, n=x.shape[0], batch_size=1, metrics=metrics)
    logs = E.evaluate_jit(cfg, params, state, *pad_batches(x, y, batch_size))
    return {k: float(v) for k, v in logs.items()}


class _Progress:
    """A tqdm bar when tqdm is installed (the ``examples`` extra), else one printed line per epoch."""

    def __init__(self, enabled, total, initial):
        self.bar, self.enabled = None, enabled
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # progress still shows, as plain lines
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, initial=initial, unit="epoch", desc="fit", leave=True)

    def update(self, record):
        if not self.enabled:
            return
        shown = {k: f"{v:.4g}" for k, v in record.items() if k not in ("epoch", "time")}
        if self.bar is not None:
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)
        else:
            print(f"epoch {record['epoch']}: " + "  ".join(f"{k} {v}" for k, v in shown.items()), flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


@functools.partial(jax.jit, static_argnums=0)
def _fresh_carry(cfg, params, state, opt_state, best_value, best_epoch, wait):
    """:func:`jaxnet.train.epoch.initial_carry` in new buffers, in one dispatch.

    ``fit`` donates its working buffers: it must never consume arrays the caller still holds, and
    no buffer may appear twice (``best`` starts as ``params``). An explicit copy of every leaf
    keeps jit from handing an input straight back as an output.
    """
    carry = E.initial_carry(cfg, params, state, opt_state, best_value=best_value, best_epoch=best_epoch, wait=wait)
    return jax.tree_util.tree_map(lambda a: jnp.array(a, copy=True), carry)


def fit(
    model: Layer,
    loss: str | Callable[..., Array],
    optimizer: Optimizer,
    train_data: tuple[Array, Array],
    *,
    epochs: int,
    batch_size: int,
    key: Array,
    validation: tuple[Array, Array] | float | None = None,
    metrics: Mapping[str, Callable[..., Array]] | None = None,
    early_stopping: EarlyStopping | None = None,
    progress: bool = True,
    penalty: Callable[[Params], Array] | None = None,
    augment: Callable[[Array, Array], Array] | None = None,
    init: tuple[Params, State, OptState] | None = None,
    initial_epoch: int = 0,
    history: History | None = None,
    epochs_per_call: int = 1,
    drop_last: bool = True,
    eval_batch_size: int = 1024,
    precision=None,
    mesh=None,
    reduce_on_plateau: ReduceOnPlateau | None = None,
) -> FitResult:
    """Train ``model`` on ``train_data = (x, y)`` with mini-batch steps of ``optimizer``.

    Each dispatch runs ``epochs_per_call`` whole epochs (shuffle, batches, updates,
    validation, early stopping) as one compiled program; see :mod:`jaxnet.train.epoch`.

    Args:
      model, loss, optimizer: the network, the loss (name or callable) and the optimizer.
      train_data: ``(x, y)`` arrays with the samples along axis 0.
      epochs: total number of epochs (counting ``initial_epoch`` ones already done).
      batch_size: samples per step; the last partial batch is dropped (``drop_last``).
      key: a ``jax.random`` key; it fixes the init, the validation split, every shuffle
        and every step's key. The same key gives bit-identical results.
      validation: ``None``, a fraction in (0, 1) held out of ``train_data`` (stratified
        for integer labels), or ``(x_val, y_val)``.
      metrics: names mapped to ``fn(outputs, y, where)``, e.g. ``{"accuracy": losses.accuracy}``.
      early_stopping: an :class:`EarlyStopping` (needs validation for ``val_*`` monitors).
      progress: show a progress bar (tqdm, from the ``examples`` extra; plain lines without it);
        ``False`` prints nothing.
      penalty: ``penalty(params) -> scalar`` added to the loss.
      augment: ``augment(key, x) -> x`` applied to each training batch.
      init: ``(params, state, opt_state)`` to start from (e.g. a loaded checkpoint), else
        the model and optimizer are initialised from ``key``.
      initial_epoch: epochs already done (resuming); the keys of later epochs do not change.
        Resume from the last epoch's params and optimizer state (train with
        ``restore_best=False``, or keep your own copy), not from restored best params.
      history: the history so far (a :class:`History`, or the dict a checkpoint stores, e.g.
        ``load_checkpoint(...).history``), extended in a copy when resuming; early stopping's
        best value and patience counter are recomputed from it, which is why a resumed run
        should pass it.
      epochs_per_call: epochs per dispatch; larger values return to Python less often.
      drop_last: drop the last partial batch of each epoch (else pad and mask it).
      eval_batch_size: batch size of the validation pass.
      precision: ``None`` (the model's own dtypes), a name (``"bf16"``, ``"f16"``, ``"f32"``) or a
        :class:`~jaxnet.train.precision.Policy`: params stay float32, the model computes in the
        policy's dtype (see :mod:`jaxnet.train.precision`).
      mesh: a ``jax.sharding.Mesh`` with a ``"data"`` axis (:func:`~jaxnet.train.parallel.data_mesh`):
        data-parallel training, each step's batch split over the devices (``batch_size`` must be
        a multiple of their number), params replicated; across processes after
        ``jaxnet.train.distributed.initialize``.
      reduce_on_plateau: a :class:`~jaxnet.train.plateau.ReduceOnPlateau` rule: cut the learning
        rate (held in the optimizer state, so nothing recompiles) when its monitor stops
        improving; each record then also holds ``learning_rate``.

    Returns:
      A :class:`FitResult` ``(params, state, opt_state, history, epoch)``.

    Raises:
      TypeError: for a ``key`` that is not one ``jax.random`` key (legacy or typed), or a
        ``history`` that is neither a History nor its dict.
      ValueError/TypeError: for mismatched x/y lengths, labels outside the model's classes,
        a batch larger than the training set, a model whose outputs do not fit the loss,
        ``epochs <= 0``, an unknown early-stopping monitor.
    """
    where = "fit"
    if not isinstance(model, Layer):
        raise TypeError(f"fit: model must be a Layer, got {type(model).__name__}")
    optimizer = as_optimizer(optimizer, owner="fit: optimizer")
    check_metrics(metrics)
    epochs = _positive_int(where, "epochs", epochs)
    batch_size = _positive_int(where, "batch_size", batch_size)
    epochs_per_call = _positive_int(where, "epochs_per_call", epochs_per_call)
    if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, int) or not 0 <= initial_epoch <= epochs:
        raise ValueError(f"fit: initial_epoch must be an int in [0, epochs={epochs}], got {initial_epoch!r}")
    if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
        raise TypeError(f"fit: early_stopping must be an EarlyStopping(...), got {early_stopping!r}")
    check_key(where, key)
    eval_batch_size = _positive_int(where, "eval_batch_size", eval_batch_size)
    history = _check_history(where, history)
    get_loss(loss)
    if precision is not None:
        precision = get_policy(precision)
    if mesh is not None:
        check_mesh(where, mesh, batch_size)
    x, y = check_data(where, train_data)
    k_init, k_split, k_train = threefry.fold_in_host(key, 3)  # init, validation split, training: no program

    val = None
    if validation is None:
        pass
    elif isinstance(validation, (float, int)) and not isinstance(validation, bool):
        (x, y), val = split_validation(k_split, x, y, float(validation))
    else:
        val = check_data(where, validation, name="validation")
    if batch_size > x.shape[0]:
        raise ValueError(f"fit: batch_size {batch_size} is larger than the {x.shape[0]} training samples")

    if init is None:
        _, params, state = model.init(k_init, (-1, *x.shape[1:]))
        opt_state = optimizer.init(params)
    else:
        if not isinstance(init, (tuple, list)) or len(init) != 3:
            raise TypeError("fit: init must be a tuple (params, state, opt_state)")
        params, state, opt_state = init  # copied with the rest of the carry below, before anything is donated
    check_model_fits(where, model, loss, params, state, x, y)
    if init is not None:  # another optimizer's state fails inside the compiled epoch: say here that init= holds it
        try:
            _optimizer_update.eval_shape(E.Ref(optimizer), params, opt_state)
        except (ValueError, TypeError) as e:
            kind = TypeError if isinstance(e, TypeError) else ValueError
            raise kind(
                f"fit: init=(params, state, opt_state): the opt_state does not fit this optimizer: {e}"
            ) from None
    if val is not None:
        check_model_fits(where, model, loss, params, state, *val)

    names = ["loss", *sorted(dict(metrics or {}))]
    columns = names + ([f"val_{k}" for k in names] if val is not None else [])
    if early_stopping is not None and early_stopping.monitor not in columns:
        raise ValueError(
            f"fit: early_stopping monitors {early_stopping.monitor!r}, which this run does not "
            f"record; recorded: {columns}" + ("" if val is not None else " (give validation=)")
        )

    if reduce_on_plateau is not None:
        if reduce_on_plateau.monitor not in columns:
            raise ValueError(f"fit: reduce_on_plateau monitors {reduce_on_plateau.monitor!r}; recorded: {columns}")
        cut_lr(reduce_on_plateau, opt_state)  # fails now, not after an epoch, if there is no stored rate to cut
        plateau = PlateauState()

    cfg = E.make_config(
        model,
        loss,
        optimizer,
        n=x.shape[0],
        batch_size=batch_size,
        penalty=penalty,
        augment=augment,
        metrics=metrics,
        drop_last=drop_last,
        weighted=not drop_last,
        has_val=val is not None,
        early_stopping=early_stopping,
        precision=precision,
        mesh=mesh,
    )
    w = jax.device_put(np.ones((x.shape[0],), np.float32))  # a transfer, not a program to compile
    val_b = pad_batches(val[0], val[1], eval_batch_size) if val is not None else None
    history = history.copy() if history is not None else History()
    best_value, best_epoch, wait = _resume_early_stopping(early_stopping, history)
    # fresh buffers: donation must not see one buffer twice (e.g. best is params), nor the caller's arrays
    carry = _fresh_carry(cfg, params, state, opt_state, best_value, best_epoch, wait)
    place = (lambda t: t) if mesh is None else (lambda t: replicate_global(t, mesh))
    carry, x, y, w, val_b, k_train = place((carry, x, y, w, val_b, k_train))

    bar = _Progress(progress, epochs, initial_epoch)
    done = initial_epoch
    try:
        for start in range(initial_epoch, epochs, epochs_per_call):
            es = np.arange(start, start + epochs_per_call, dtype=np.int32)  # host arrays: no dispatch to build them
            t0 = time.perf_counter()
            carry, (logs, ran) = E.run_epochs_jit(cfg, carry, x, y, w, val_b, k_train, *place((es, es < epochs)))
            # one transfer for the records and the two flags that end the loop
            logs, ran, halted, stopped = jax.device_get((logs, ran, carry.halted, carry.stopped))
            dt = (time.perf_counter() - t0) / max(int(ran.sum()), 1)
            for j in np.flatnonzero(ran):
                record = {"epoch": start + int(j) + 1, **{k: float(logs[k][j]) for k in columns}, "time": dt}
                if reduce_on_plateau is not None:
                    record["learning_rate"] = current_value(reduce_on_plateau, carry.opt_state)
                    plateau, cut_now = plateau_step(reduce_on_plateau, plateau, record[reduce_on_plateau.monitor])
                    if cut_now:
                        carry = carry._replace(opt_state=cut_lr(reduce_on_plateau, carry.opt_state))
                history.records.append(record)
                bar.update(record)
                done = start + int(j) + 1
            if bool(halted) or bool(stopped):
                break
    finally:
        bar.close()

    params, state = carry.params, carry.state
    if bool(carry.halted):
        bad_epoch, bad_step = int(carry.bad_epoch) + 1, int(carry.bad_step)
        history.stop_reason, history.nonfinite = "nonfinite", {"epoch": bad_epoch, "step": bad_step}
        warnings.warn(
            f"fit: non-finite loss or parameters at epoch {bad_epoch}, step {bad_step} (epochs count from 1, steps "
            "within the epoch from 0); stopped and returned the last finite params and state (lower the learning "
            "rate?)",
            NonFiniteWarning,
            stacklevel=2,
        )
    elif bool(carry.stopped):
        history.stop_reason = "early_stopping"
    if early_stopping is not None and early_stopping.restore_best and int(carry.best_epoch) >= 0:
        params, state = carry.best
        history.best_epoch = int(carry.best_epoch) + 1
    return FitResult(params, state, carry.opt_state, history, done)


def _check_history(where: str, history) -> History | None:
    """A :class:`History`, or one rebuilt from the dict a checkpoint stores (``History.to_dict``)."""
    if history is None or isinstance(history, History):
        return history
    if isinstance(history, dict):
        try:
            return History.from_dict(history)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{where}: history given as a dict must be History.to_dict()'s form: {e}") from None
    raise TypeError(f"{where}: history must be a History or the dict a checkpoint stores, got {type(history).__name__}")


def _resume_early_stopping(es: EarlyStopping | None, history: History):
    """Early-stopping counters recomputed from a history (for resuming)."""
    if es is None or not history.records:
        return None, -1, 0
    best, best_epoch, wait = None, -1, 0
    for r in history.records:
        if es.monitor not in r:
            raise ValueError(
                f"fit: the history to resume has no {es.monitor!r} column for early stopping; it has {sorted(r)}"
            )
        v = r[es.monitor]
        if best is None or (v < best - es.min_delta if es.minimize else v > best + es.min_delta):
            best, best_epoch, wait = v, r["epoch"] - 1, 0
        else:
            wait += 1
    return best, best_epoch, wait
