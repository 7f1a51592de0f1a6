"""Whole epochs as one compiled program (§4.3.4).

An epoch shuffles the ``n`` training samples, cuts them into ``n // batch_size``
mini-batches and takes one optimizer step per batch. Here all of that (the shuffle,
the gathers, augmentation, the updates and the running metrics) is a single
compiled loop over the steps, and several epochs, each followed by a validation pass and the
early-stopping bookkeeping, are an outer ``lax.scan``: one dispatch from Python runs
``epochs_per_call`` epochs.

Randomness, so that a Python loop (or a resumed run) can reproduce it exactly:
epoch ``e`` uses ``k = fold_in(key, e)``; ``k_shuffle, k_steps = split(k)``; the batch
order is :func:`jaxnet.data.shuffle_batches` ``(k_shuffle, n, batch_size)`` and step ``i`` of the epoch gets
``fold_in(k_steps, i)``.

Compilation cache. The compiled programs are module-level functions jitted with a
static, hashable :class:`EngineConfig` (the model, loss, optimizer, metric functions
compared by identity, plus sizes and flags). A second ``fit`` with the same objects
and shapes therefore hits jax's own (bounded) compilation cache and does not retrace;
jaxnet keeps no cache or other mutable state of its own. jaxnet's optimizers compare by
program (:mod:`jaxnet.optim.program`): a fresh ``adam(3e-4)`` after ``adam(1e-3)`` reuses the
compiled program, since the learning rate is an input; losses given by name compare by name.
Models, metric functions and optax transforms compare by identity: build them once and reuse them.

Non-finite guard. The result is as if, after every step, the loss and the new
params/state were checked; on the first non-finite value the step's result is
discarded, the carry keeps the last finite params/state/optimizer state, every
remaining step and epoch is skipped, and the epoch and step are recorded. The epoch's
steps are one loop that checks each step's loss and stops after the first non-finite one;
the params and state are checked once, at the end. Only when either check fails is the
loop run again from the epoch's start, with the same keys and batches: once checking every
step's new params and state too, to find the first failing step, and once over the steps
before it, to recover the last finite values (see :func:`train_epoch`). The step is traced
and compiled once: there is no second, guarded copy of it in the program.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import NamedSharding, PartitionSpec

from jaxnet import _threefry as threefry
from jaxnet.data.batching import shuffle_batches
from jaxnet.optim.program import ProgramRef, program_ref
from jaxnet.train.history import EarlyStopping
from jaxnet.train.precision import get_policy, mixed_precision
from jaxnet.train.step import eval_step_fn, train_step_fn
from jaxnet.types import Array, Layer, Optimizer, OptState, Params, State, check_key

DATA_AXIS = "data"  # the mesh axis a data-parallel batch is split over (as in jaxnet.train.parallel)


class Ref:
    """Wraps an object so that it hashes and compares by identity (for static jit arguments).

    A string (a loss or metric given by name) compares by value: the same name is the same program.
    """

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __hash__(self):
        return hash(self.obj) if isinstance(self.obj, str) else id(self.obj)

    def __eq__(self, other):
        if isinstance(self.obj, str):
            return isinstance(other, Ref) and isinstance(other.obj, str) and other.obj == self.obj
        return isinstance(other, Ref) and other.obj is self.obj

    def __repr__(self):
        return f"Ref({self.obj!r})"


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    """Everything static about a training run: a change here means a new compiled program."""

    model: Ref
    loss: Ref
    optimizer: ProgramRef  # equal for optimizers that are the same program (see jaxnet.optim.program)
    penalty: Ref
    augment: Ref
    metrics: tuple  # ((name, Ref(fn)), ...)
    n: int
    batch_size: int
    drop_last: bool = True
    weighted: bool = False
    has_val: bool = False
    early_stopping: EarlyStopping | None = None
    precision: Any = None  # a jaxnet.train.precision.Policy: the model computes in its compute dtype
    mesh: Any = None  # a jax.sharding.Mesh with a "data" axis: each step's batch is split over it

    def model_fn(self):
        """The model the compiled programs run: wrapped by the precision policy when there is one."""
        if self.precision is None:
            return self.model.obj
        return mixed_precision(self.model.obj, self.precision)

    @property
    def metric_dict(self) -> dict:
        return {name: ref.obj for name, ref in self.metrics}

    def step_fn(self) -> Callable:
        return train_step_fn(
            self.model_fn(),
            self.loss.obj,
            self.optimizer.obj,
            penalty=self.penalty.obj,
            augment=self.augment.obj,
            metrics=self.metric_dict,
        )

    def eval_fn(self) -> Callable:
        return eval_step_fn(self.model_fn(), self.loss.obj, metrics=self.metric_dict)


def make_config(
    model: Layer,
    loss: str | Callable[..., Array],
    optimizer: Optimizer | None,
    *,
    n: int,
    batch_size: int,
    penalty: Callable[[Params], Array] | None = None,
    augment: Callable[[Array, Array], Array] | None = None,
    metrics: Mapping[str, Callable[..., Array]] | None = None,
    drop_last: bool = True,
    weighted: bool = False,
    has_val: bool = False,
    early_stopping: EarlyStopping | None = None,
    precision=None,
    mesh=None,
) -> EngineConfig:
    """Build the static :class:`EngineConfig` (metrics sorted by name so dict order does not matter)."""
    named = tuple(sorted((str(k), Ref(v)) for k, v in dict(metrics or {}).items()))
    return EngineConfig(
        Ref(model),
        Ref(loss),
        program_ref(optimizer),
        Ref(penalty),
        Ref(augment),
        named,
        int(n),
        int(batch_size),
        bool(drop_last),
        bool(weighted),
        bool(has_val),
        early_stopping,
        None if precision is None else get_policy(precision),
        mesh,
    )


def tree_all_finite(tree: Any) -> Array:
    """A scalar bool: every floating-point leaf of ``tree`` is finite."""
    leaves = [
        jnp.all(jnp.isfinite(leaf))
        for leaf in jax.tree_util.tree_leaves(tree)
        if jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.inexact)
    ]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def tree_select(pred: Array, on_true: Any, on_false: Any) -> Any:
    """``on_true`` where the scalar ``pred`` holds, else ``on_false``, leaf by leaf."""
    return jax.tree_util.tree_map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


PREGATHER_BYTES = 256 * 2**20
"""Data up to this size (x, y and weights together) is gathered once per epoch, not per step."""


def _rows(a: Array, idx: Array) -> Array:
    """``a[idx]`` along axis 0 for indices known to be in range (a permutation's): no bounds fill."""
    return a.at[idx].get(mode="promise_in_bounds")


def _batch(cfg: EngineConfig, pregather: bool, x, y, w, data) -> tuple:
    """One step's batch: ``data`` is the pre-gathered ``(x, y, w)`` or ``(batch indices, mask)`` to gather."""
    if pregather:
        xb, yb, wb = data
    else:
        bi, bm = data
        xb, yb, wb = _rows(x, bi), _rows(y, bi), _rows(w, bi) * bm
    batch = (xb, yb, wb) if cfg.weighted else (xb, yb)
    if cfg.mesh is not None:  # data parallel: each device computes on its slice of the batch
        batch = lax.with_sharding_constraint(batch, NamedSharding(cfg.mesh, PartitionSpec(DATA_AXIS)))
    return batch


def train_epoch(
    cfg: EngineConfig,
    params: Params,
    state: State,
    opt_state: OptState,
    x: Array,
    y: Array,
    w: Array,
    key: Array,
    halted: bool | Array = False,
    *,
    axis_name: str | None = None,
) -> tuple[Params, State, OptState, Array, Array, dict[str, Array]]:
    """One epoch as one compiled loop; returns ``(params, state, opt_state, halted, bad_step, metrics)``.

    ``metrics`` holds the means, over the real samples of the epoch's finite steps, of the
    step metrics (each step weighted by its batch's total sample weight); NaN when the first
    step already failed (no finite step to average).
    ``halted`` comes in (skip everything) and goes out (a non-finite value was met at
    ``bad_step``, -1 if none).

    The program is one ``while_loop`` over the steps inside a ``while_loop`` over at most
    three passes, and holds one copy of the step. In pass 0 each step checks its loss (a
    scalar the step computes anyway) and the loop stops after the first non-finite one; the
    final params and state are then checked once (one reduction per leaf per epoch, not per
    step). When both checks pass, which is the common path, the epoch is done: one pass, no
    per-step copy, select or reduction of the params. Otherwise pass 1 reruns the steps from
    the epoch's start with the same keys and batches, checking every new params/state leaf
    as well (behind a ``cond`` that pass 0 skips), and stops at the first failing step; pass 2
    reruns the steps before it, which leaves the last finite values and the metrics of the
    finite steps. The metrics are summed in the loop's carry (no per-step arrays to reduce
    afterwards; unweighted, the weighting by samples waits until after the loop).

    ``axis_name``: the ``jax.vmap`` axis of ensemble members, when the epoch runs under one
    (see :func:`_train_epoch_members`, which keeps a per-member decision out of the step loop).

    Raises nothing itself; errors in the model, loss or optimizer surface when tracing.
    """
    if axis_name is not None:
        return _train_epoch_members(cfg, params, state, opt_state, x, y, w, key, halted, axis_name=axis_name)
    step = cfg.step_fn()
    names = log_names(cfg)
    k_shuffle, k_steps = threefry.split(key)
    idx, mask = shuffle_batches(k_shuffle, cfg.n, cfg.batch_size, drop_last=cfg.drop_last)
    steps = idx.shape[0]
    # Gathering the whole shuffled epoch at once is one large copy instead of a small gather per
    # step (several times cheaper per step on a CPU); it needs the data a second time in memory,
    # so it is done only when that copy is small.
    pregather = sum(a.size * a.dtype.itemsize for a in (x, y, w)) <= PREGATHER_BYTES
    # Each step's metrics weigh by its real samples (the total weight of its batch), so a mostly
    # padded last step counts for what it holds; the means are then means over real samples.
    data: tuple[Array, ...]
    real: Array | None = None
    if pregather:  # (x batches, y batches, weights), one gather per array for the whole epoch

        def cut(a):
            return _rows(a, idx.reshape(-1)).reshape((steps, cfg.batch_size, *a.shape[1:]))

        wb = cut(w) * mask if cfg.weighted else mask  # weights only when used
        data = (cut(x), cut(y), wb)
        if cfg.weighted:
            real = jnp.sum(wb.astype(jnp.float32), axis=1)
    else:  # (batch indices, mask): each step gathers its batch
        data = (idx, mask)
        if cfg.weighted:
            real = jnp.sum(_rows(w, idx).astype(jnp.float32) * mask, axis=1)

    def take_step(p, s, o, i):
        batch_data = tuple(lax.dynamic_index_in_dim(a, i, keepdims=False) for a in data)
        return step(p, s, o, _batch(cfg, pregather, x, y, w, batch_data), threefry.fold_in(k_steps, i))

    # One loop over the steps, run in one pass on the common path; the step is traced and
    # compiled once. A pass runs from the epoch's start and stops after step ``limit - 1`` or
    # after the first step whose check fails (``bad``). Every step checks its loss (a scalar
    # the step computes anyway); the new params and state (one reduction per leaf) are checked
    # at the pass's last step only, except in pass 1, which checks them at every step. So
    # pass 0 finds out whether the epoch is finite at the cost of one params check; when it is
    # not, pass 1 reruns the steps to find the first failing one and pass 2 reruns the steps
    # before it: its result is the last finite one. The reruns see the same keys and batches.
    # The params check sits behind a ``cond``: one copy of it in the program, skipped by the
    # steps that do not need it.
    def run_steps(limit, full):
        def more(c):
            return (c[0] < limit) & (c[4] < 0)

        def body(c):
            i, p, s, o, bad, sums = c
            p, s, o, logs = take_step(p, s, o, i)
            check = full | (i == limit - 1)
            ok = jnp.isfinite(logs["loss"]) & lax.cond(check, tree_all_finite, lambda t: jnp.asarray(True), (p, s))
            # unweighted, every step holds batch_size samples: the weighting waits until after the loop
            sums = {k: sums[k] + (_f32(logs[k]) if real is None else _f32(logs[k]) * real[i]) for k in names}
            return i + 1, p, s, o, jnp.where(ok, bad, i), sums

        init = (jnp.asarray(0, jnp.int32), params, state, opt_state, jnp.asarray(-1, jnp.int32), _zero_sums(names))
        ran, p, s, o, bad, sums = lax.while_loop(more, body, init)
        # unweighted, the sums are per step (their mean over the steps run), else per real sample
        count = ran.astype(jnp.float32) if real is None else jnp.sum(jnp.where(jnp.arange(steps) < ran, real, 0))
        return p, s, o, bad, sums | {"_count": count}

    def not_done(c):
        return ~c[1]

    def do_pass(c):
        # c = (pass, done, (params, state, opt_state, failed, bad, sums)); ``bad``: the failing step found so far
        n_pass, _, (_, _, _, _, bad_before, _) = c
        limit = jnp.where(n_pass == 0, steps, jnp.where(n_pass == 1, bad_before + 1, bad_before))
        p, s, o, bad, sums = run_steps(limit, n_pass == 1)
        # pass 0: a step at or before which the first failure lies; pass 1: the first failure
        bad = jnp.where((n_pass < 2) & (bad >= 0), bad, bad_before)
        done = (n_pass == 2) | (bad < 0)
        return n_pass + 1, done, (p, s, o, bad >= 0, bad, sums)

    halted = jnp.asarray(halted)
    start = (params, state, opt_state, halted, jnp.asarray(-1, jnp.int32), _zero_sums((*names, "_count")))
    _, _, (params, state, opt_state, stop, bad, sums) = lax.while_loop(
        not_done, do_pass, (jnp.asarray(0, jnp.int32), halted, start)
    )
    count = sums.pop("_count")
    means = _means(sums, count)
    return params, state, opt_state, halted | stop, bad, means


def _means(sums: dict[str, Array], count: Array) -> dict[str, Array]:
    """``sums / count``; NaN when no step finished (an epoch halted at its first step has no loss to report)."""
    return {k: jnp.where(count > 0, v / jnp.where(count > 0, count, 1), jnp.nan) for k, v in sums.items()}


def log_names(cfg: EngineConfig) -> tuple[str, ...]:
    """The names of an epoch's training metrics: ``"loss"`` and the configured metrics."""
    return ("loss", *(name for name, _ in cfg.metrics))


def _f32(v):
    return jnp.asarray(v).astype(jnp.float32)


def _zero_sums(names) -> dict[str, Array]:
    return {k: jnp.zeros((), jnp.float32) for k in names}


def _train_epoch_members(cfg, params, state, opt_state, x, y, w, key, halted, *, axis_name):
    """:func:`train_epoch` for one member of a ``vmap``-ed ensemble (``axis_name``: the members' axis).

    Under ``vmap`` a loop whose stopping test differs between members runs every member's step
    and selects per member on every iteration, so the early-stopping loop of :func:`train_epoch`
    would cost a select of all params per step. Here the epoch is a plain scan; each step's loss
    is recorded and the final params and state are checked once; only when any member met a
    non-finite value (one decision for all members, so an unbatched ``cond``) is the epoch
    replayed with a per-step check and a select that keeps the last finite values. The replay
    holds a second copy of the step, which costs compile time, not run time.
    """
    step = cfg.step_fn()
    k_shuffle, k_steps = threefry.split(key)
    idx, mask = shuffle_batches(k_shuffle, cfg.n, cfg.batch_size, drop_last=cfg.drop_last)
    steps = idx.shape[0]
    # Gathering the whole shuffled epoch at once is one large copy instead of a small gather per
    # step (several times cheaper per step on a CPU); it needs the data a second time in memory,
    # so it is done only when that copy is small, and not for ensemble members: each member has
    # its own order, so the copy would be made once per member (8 members: 10 % slower per step
    # than gathering each batch, on the 2-core CPU).
    pregather = axis_name is None and sum(a.size * a.dtype.itemsize for a in (x, y, w)) <= PREGATHER_BYTES
    order = jnp.arange(steps, dtype=jnp.int32)
    xs: tuple[jax.Array, tuple[Any, ...]]
    if pregather:  # scan over (i, (x batch, y batch, weights))

        def cut(a):
            return _rows(a, idx.reshape(-1)).reshape((steps, cfg.batch_size, *a.shape[1:]))

        xs = (order, (cut(x), cut(y), cut(w) * mask if cfg.weighted else mask))  # weights only when used
    else:  # scan over (i, (batch indices, mask)) and gather inside each step
        xs = (order, (idx, mask))

    def take_step(p, s, o, i, data):
        return step(p, s, o, _batch(cfg, pregather, x, y, w, data), threefry.fold_in(k_steps, i))

    first = jax.tree_util.tree_map(lambda a: a[0], xs)
    log_shapes = jax.eval_shape(lambda: take_step(params, state, opt_state, *first)[3])

    def plain_body(carry, inp):
        p, s, o, logs = take_step(*carry, *inp)
        return (p, s, o), logs

    def guarded_body(carry, inp):
        p, s, o, stop, bad = carry
        i, data = inp

        def go(_):
            p2, s2, o2, logs = take_step(p, s, o, i, data)
            ok = jnp.isfinite(logs["loss"]) & tree_all_finite((p2, s2))
            return tree_select(ok, (p2, s2, o2), (p, s, o)), logs, ok

        def skip(_):
            return (
                (p, s, o),
                jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), log_shapes),
                jnp.asarray(False),
            )

        (p, s, o), logs, ok = lax.cond(stop, skip, go, None)
        bad = jnp.where(~stop & ~ok, i, bad)
        return (p, s, o, stop | ~ok, bad), (logs, ok)

    def replay(_):
        init = (params, state, opt_state, jnp.asarray(False), jnp.asarray(-1, jnp.int32))
        (p, s, o, stop, bad), (logs, ok) = lax.scan(guarded_body, init, xs)
        return p, s, o, stop, bad, logs, ok

    def run(_):
        (p, s, o), logs = lax.scan(plain_body, (params, state, opt_state), xs)
        fine = jnp.all(jnp.isfinite(logs["loss"])) & tree_all_finite((p, s))
        if axis_name is not None:  # one decision for all members: an unbatched predicate stays a real cond
            # (a member halted earlier keeps its old values whatever this run gives: it does not vote)
            fine = lax.pmin((fine | jnp.asarray(halted)).astype(jnp.int32), axis_name).astype(bool)
        all_ok = jnp.ones((steps,), bool)
        return lax.cond(
            fine, lambda _: (p, s, o, jnp.asarray(False), jnp.asarray(-1, jnp.int32), logs, all_ok), replay, None
        )

    def skip_epoch(_):
        zeros = jax.tree_util.tree_map(lambda a: jnp.zeros((steps, *a.shape), a.dtype), log_shapes)
        return (
            params,
            state,
            opt_state,
            jnp.asarray(True),
            jnp.asarray(-1, jnp.int32),
            zeros,
            jnp.zeros((steps,), bool),
        )

    params, state, opt_state, halted_out, bad, logs, ok = lax.cond(jnp.asarray(halted), skip_epoch, run, None)
    # Each step's metrics weigh by its real samples (the total weight of its batch), so a mostly
    # padded last step counts for what it holds; the means are then means over real samples.
    if cfg.weighted:
        real = jnp.sum(_rows(w, idx).astype(jnp.float32) * mask, axis=1)
    else:
        real = jnp.full((steps,), float(cfg.batch_size), jnp.float32)
    real = jnp.where(ok, real, 0)
    means = _means({k: jnp.sum(jnp.where(ok, v, 0).astype(jnp.float32) * real) for k, v in logs.items()}, jnp.sum(real))
    return params, state, opt_state, halted_out, bad, means


def evaluate_batched(
    cfg: EngineConfig, params: Params, state: State, xb: Array, yb: Array, mb: Array
) -> dict[str, Array]:
    """Mean loss and metrics over padded eval batches ``xb [nb, eb, ...]`` with mask ``mb [nb, eb]``."""
    evaluate = cfg.eval_fn()

    def body(acc, inp):
        x, y, m = inp
        logs = evaluate(params, state, (x, y, m))
        c = jnp.sum(m).astype(jnp.float32)
        return jax.tree_util.tree_map(lambda a, v: a + c * v.astype(jnp.float32), acc, logs), None

    zeros = {k: jnp.zeros((), jnp.float32) for k in log_names(cfg)}  # the step's logs, known without a trace
    sums, _ = lax.scan(body, zeros, (xb, yb, mb))
    total = jnp.maximum(jnp.sum(mb), 1).astype(jnp.float32)
    return {k: v / total for k, v in sums.items()}


class Carry(NamedTuple):
    """What flows from epoch to epoch inside the compiled loop."""

    params: Any
    state: Any
    opt_state: Any
    best: Any  # (params, state) of the best epoch when restoring, else ()
    best_value: jax.Array
    best_epoch: jax.Array
    wait: jax.Array
    stopped: jax.Array
    halted: jax.Array
    bad_epoch: jax.Array
    bad_step: jax.Array


def initial_carry(
    cfg: EngineConfig,
    params: Params,
    state: State,
    opt_state: OptState,
    *,
    best_value: float | Array | None = None,
    best_epoch: int = -1,
    wait: int = 0,
) -> Carry:
    """The carry before the first epoch (early-stopping counters can be given to resume)."""
    es = cfg.early_stopping
    if best_value is None:
        best_value = float("inf") if (es is None or es.minimize) else float("-inf")
    best = (params, state) if (es is not None and es.restore_best) else ()
    return Carry(
        params,
        state,
        opt_state,
        best,
        jnp.asarray(best_value, jnp.float32),
        jnp.asarray(best_epoch, jnp.int32),
        jnp.asarray(wait, jnp.int32),
        jnp.asarray(False),
        jnp.asarray(False),
        jnp.asarray(-1, jnp.int32),
        jnp.asarray(-1, jnp.int32),
    )


def run_epochs(
    cfg: EngineConfig,
    carry: Carry,
    x: Array,
    y: Array,
    w: Array,
    val: tuple[Array, Array, Array] | None,
    key: Array,
    epochs: Array,
    active: Array,
    *,
    axis_name: str | None = None,
) -> tuple[Carry, Any]:
    """Run the epochs listed in ``epochs`` (``active`` False: skip) as one ``lax.scan``.

    ``axis_name``: the members' ``jax.vmap`` axis, passed on to :func:`train_epoch`.

    Returns ``(carry, (metrics, ran))`` with per-epoch stacked metrics and a bool ``ran``.
    """
    es = cfg.early_stopping
    # The epoch's records are float32 scalars with known names: no trace of the epoch is needed for them.
    names = log_names(cfg)
    zero_logs = _zero_sums((*names, *((f"val_{k}" for k in names) if cfg.has_val and val is not None else ())))

    def one_epoch(c: Carry, e):
        p, s, o, halted, bad, logs = train_epoch(
            cfg, c.params, c.state, c.opt_state, x, y, w, threefry.fold_in(key, e), c.halted, axis_name=axis_name
        )
        if cfg.has_val and val is not None:
            vlogs = evaluate_batched(cfg, p, s, *val)
            logs = {**logs, **{f"val_{k}": v for k, v in vlogs.items()}}
        newly = halted & ~c.halted
        c = c._replace(
            params=p,
            state=s,
            opt_state=o,
            halted=halted,
            bad_epoch=jnp.where(newly, e, c.bad_epoch),
            bad_step=jnp.where(newly, bad, c.bad_step),
        )
        if es is not None:
            value = logs[es.monitor]
            better = (value < c.best_value - es.min_delta) if es.minimize else (value > c.best_value + es.min_delta)
            better = better & ~halted
            best = tree_select(better, (p, s), c.best) if es.restore_best else ()
            wait = jnp.where(better, 0, c.wait + 1)
            c = c._replace(
                best=best,
                best_value=jnp.where(better, value, c.best_value),
                best_epoch=jnp.where(better, e, c.best_epoch),
                wait=wait,
                stopped=wait >= es.patience,
            )
        return c, logs

    def body(c: Carry, inp):
        e, act = inp
        run = act & ~c.stopped & ~c.halted
        c, logs = lax.cond(run, one_epoch, lambda c, e: (c, zero_logs), c, e)
        return c, (logs, run)

    return lax.scan(body, carry, (epochs, active))


# The compiled entry points: module-level, with the config static, so jax's cache is the only cache.
run_epochs_jit = jax.jit(run_epochs, static_argnums=0, donate_argnums=1)


_MEMBERS = "members"  # the vmap axis of an ensemble's members


def _run_members(cfg, carry, x, y, w, val, key, epochs, active):
    def fn(c, w_, k):
        return run_epochs(cfg, c, x, y, w_, val, k, epochs, active, axis_name=_MEMBERS)

    return jax.vmap(fn, axis_name=_MEMBERS)(carry, w, key)


run_members_jit = jax.jit(_run_members, static_argnums=0, donate_argnums=1)


def _evaluate_arrays(cfg, params, state, xb, yb, mb):
    return evaluate_batched(cfg, params, state, xb, yb, mb)


evaluate_jit = jax.jit(_evaluate_arrays, static_argnums=0)


def make_train_epoch(
    model: Layer,
    loss: str | Callable[..., Array],
    optimizer: Optimizer,
    *,
    batch_size: int,
    n: int,
    penalty: Callable[[Params], Array] | None = None,
    augment: Callable[[Array, Array], Array] | None = None,
    metrics: Mapping[str, Callable[..., Array]] | None = None,
    drop_last: bool = True,
) -> Callable:
    """A compiled epoch ``epoch(params, state, opt_state, (x, y), key) -> (params, state, opt_state, metrics)``.

    ``metrics`` also holds ``"nonfinite_step"`` (-1 when every step was finite). The
    random keys follow the scheme in this module's docstring.
    """
    cfg = make_config(
        model,
        loss,
        optimizer,
        n=n,
        batch_size=batch_size,
        penalty=penalty,
        augment=augment,
        metrics=metrics,
        drop_last=drop_last,
        weighted=not drop_last,
    )

    @jax.jit
    def epoch(params, state, opt_state, data, key):
        check_key("train epoch", key)
        x, y = data
        w = jnp.ones((x.shape[0],), jnp.float32)
        p, s, o, _, bad, logs = train_epoch(cfg, params, state, opt_state, x, y, w, key)
        return p, s, o, {**logs, "nonfinite_step": bad}

    return epoch
