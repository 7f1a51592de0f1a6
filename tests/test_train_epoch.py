"""A whole epoch as one lax.scan equals the same epoch stepped from Python; batch layout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _jaxpr_walk import has_dot, subjaxprs

import jaxnet as jn
from jaxnet.data import shuffle_batches
from jaxnet.nn import losses
from jaxnet.train import epoch as epoch_module
from jaxnet.train import make_train_epoch, make_train_step

LOSS = losses.softmax_cross_entropy_with_integer_labels


def _data(n=50, d=5, c=3):
    x = jax.random.normal(jax.random.PRNGKey(1), (n, d))
    y = jax.random.randint(jax.random.PRNGKey(2), (n,), 0, c)
    return x, y


def _copy(t):
    return jax.tree_util.tree_map(jnp.copy, t)


@pytest.mark.parametrize("pregather", [True, False])
@pytest.mark.parametrize("drop_last", [True, False])
def test_scan_epoch_equals_python_stepped_epoch(drop_last, pregather, monkeypatch):
    # Small data is gathered once per epoch; larger data is gathered step by step. Both must agree.
    if not pregather:
        monkeypatch.setattr(epoch_module, "PREGATHER_BYTES", 0)
    x, y = _data()
    model = jn.MLP([16, 3], "tanh")
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 5))
    opt = jn.sgd(0.3)
    metrics = {"accuracy": losses.accuracy}
    epoch = make_train_epoch(model, LOSS, opt, batch_size=8, n=50, metrics=metrics, drop_last=drop_last)
    key = jax.random.PRNGKey(7)
    p1, _s1, o1, m1 = epoch(_copy(params), state, opt.init(params), (x, y), key)

    # The same epoch by hand, following the key scheme documented in jaxnet.train.epoch.
    step = make_train_step(model, LOSS, opt, metrics=metrics)
    k_shuffle, k_steps = jax.random.split(key)
    idx, mask = shuffle_batches(k_shuffle, 50, 8, drop_last=drop_last)
    assert idx.shape == ((6, 8) if drop_last else (7, 8))
    p2, s2, o2 = _copy(params), state, opt.init(params)
    losses_seen = []
    for i in range(idx.shape[0]):
        batch = (x[idx[i]], y[idx[i]]) + ((mask[i].astype(jnp.float32),) if not drop_last else ())
        p2, s2, o2, m = step(p2, s2, o2, batch, jax.random.fold_in(k_steps, i))
        losses_seen.append(float(m["loss"]))

    def chex_close(a, b):
        return np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)

    jax.tree_util.tree_map(chex_close, p1, p2)
    assert int(o1.count) == int(o2.count) == idx.shape[0]
    # the epoch's loss is the mean over real samples: each step weighs by its real rows (issue 13)
    assert float(m1["loss"]) == pytest.approx(np.average(losses_seen, weights=np.asarray(mask).sum(1)), rel=1e-5)
    assert int(m1["nonfinite_step"]) == -1


def _counting_penalty():
    calls = []

    def penalty(params):
        calls.append(1)  # runs only while jax traces the step
        return jnp.zeros((), jnp.float32)

    return penalty, calls


def _loops_with_a_dot(jaxpr) -> list[str]:
    """The ``while``/``scan`` equations (nested ones included, outermost first) whose body holds a matrix product."""

    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("while", "scan") and any(map(has_dot, subjaxprs(eqn))):
            found.append(eqn.primitive.name)
        for inner in subjaxprs(eqn):
            found += _loops_with_a_dot(inner)
    return found


def test_epoch_is_one_dispatch_and_traces_the_step_once():
    x, y = _data()
    model = jn.MLP([8, 3])
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 5))
    opt = jn.sgd(0.1)
    penalty, calls = _counting_penalty()
    epoch = make_train_epoch(model, LOSS, opt, batch_size=10, n=50, penalty=penalty)
    jaxpr = jax.make_jaxpr(epoch)(params, state, opt.init(params), (x, y), jax.random.PRNGKey(0))
    inner = jaxpr.jaxpr.eqns
    assert len(inner) == 1 and inner[0].primitive.name in ("pjit", "jit")
    # The step is traced once: no shape probe, no second copy for the non-finite replay (issue 16).
    assert len(calls) == 1
    text = str(jaxpr)
    # One loop over the steps (no Python loop unrolled) inside one loop over the (at most three)
    # passes; the shuffle's loops (a redraw on tied keys, a binary search) hold no matrix product.
    assert _loops_with_a_dot(jaxpr.jaxpr) == ["while", "while"]
    # One copy of the step: as many matrix products as one traced step has.
    step = make_train_step(model, LOSS, opt, jit=False)
    one = str(jax.make_jaxpr(step)(params, state, opt.init(params), (x[:10], y[:10]), jax.random.PRNGKey(0)))
    assert text.count("dot_general") == one.count("dot_general") > 0


def _nan_at(k, lr=0.1):
    """Plain SGD whose update at step ``k`` (0-based) is NaN: the loss of step ``k`` is still finite."""

    def init(params):
        return jnp.zeros((), jnp.int32)

    def update(grads, count, params=None):
        scale = jnp.where(count == k, jnp.nan, -lr)
        return jax.tree_util.tree_map(lambda g: scale * g, grads), count + 1

    return jn.Optimizer(init, update)


@pytest.mark.parametrize("k", [0, 3, 4])
def test_guard_catches_nonfinite_params_behind_a_finite_loss(k):
    # Step k yields NaN params while its loss is finite: the epoch keeps exactly steps 0..k-1
    # (params, optimizer state, and metrics over those steps) and reports k; later steps do not run.
    x, y = _data()
    model = jn.MLP([8, 3], "tanh")
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 5))
    opt = _nan_at(k)
    epoch = make_train_epoch(model, LOSS, opt, batch_size=10, n=50)
    key = jax.random.PRNGKey(3)
    p1, _, o1, m1 = epoch(_copy(params), state, opt.init(params), (x, y), key)
    assert int(m1["nonfinite_step"]) == k and int(o1) == k

    step = make_train_step(model, LOSS, opt)
    k_shuffle, k_steps = jax.random.split(key)
    idx, _ = shuffle_batches(k_shuffle, 50, 10)
    p2, s2, o2, seen = _copy(params), state, opt.init(params), []
    for i in range(k):
        p2, s2, o2, m = step(p2, s2, o2, (x[idx[i]], y[idx[i]]), jax.random.fold_in(k_steps, i))
        seen.append(float(m["loss"]))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), p1, p2)
    if k == 0:
        assert np.isnan(float(m1["loss"]))  # no finite step: nothing to average (not a perfect 0.0)
    else:
        assert float(m1["loss"]) == pytest.approx(np.mean(seen), rel=1e-5)


def _state_nan_at(k):
    """An identity layer whose state (a step counter) turns NaN at step ``k``: no loss ever sees it."""

    def init(key, shape):
        return shape, {}, {"count": jnp.zeros((), jnp.float32)}

    def apply(params, state, x, *, key=None, train=False, mask=None):
        c = state["count"]
        return x, {"count": jnp.where(train & (c >= k), jnp.nan, c + 1)}

    return jn.Layer(init, apply, name="NanCounter")


@pytest.mark.parametrize("k", [0, 2])
def test_guard_finds_nonfinite_state_that_no_loss_shows(k):
    # Every loss is finite: only the check of the params/state at the epoch's end sees the NaN,
    # and the rerun that checks every step finds that step k made it; steps 0..k-1 are kept.
    x, y = _data()
    model = jn.serial(_state_nan_at(k), jn.MLP([8, 3], "tanh"))
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 5))
    opt = jn.sgd(0.1)
    epoch = make_train_epoch(model, LOSS, opt, batch_size=10, n=50)
    key = jax.random.PRNGKey(4)
    p1, s1, _, m1 = epoch(_copy(params), state, opt.init(params), (x, y), key)
    assert int(m1["nonfinite_step"]) == k
    counts = [float(v["count"]) for v in jax.tree_util.tree_leaves(s1, is_leaf=lambda t: "count" in t)]
    assert counts == [float(k)]  # the state after steps 0..k-1, finite

    step = make_train_step(model, LOSS, opt)
    k_shuffle, k_steps = jax.random.split(key)
    idx, _ = shuffle_batches(k_shuffle, 50, 10)
    p2, s2, o2 = _copy(params), state, opt.init(params)
    for i in range(k):
        p2, s2, o2, _ = step(p2, s2, o2, (x[idx[i]], y[idx[i]]), jax.random.fold_in(k_steps, i))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), p1, p2)


def test_guard_catches_a_nonfinite_loss_and_a_halted_epoch_is_skipped():
    x, y = _data()
    x = x.at[17].set(jnp.nan)  # one sample poisons the loss of the step that draws it
    model = jn.MLP([8, 3], "tanh")
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 5))
    opt = jn.sgd(0.1)
    cfg = epoch_module.make_config(model, LOSS, opt, n=50, batch_size=10)
    w = jnp.ones((50,), jnp.float32)
    key = jax.random.PRNGKey(5)
    idx, _ = shuffle_batches(jax.random.split(key)[0], 50, 10)
    first = int(np.flatnonzero((np.asarray(idx) == 17).any(axis=1))[0])
    run = jax.jit(epoch_module.train_epoch, static_argnums=0)
    p, _, o, halted, bad, m = run(cfg, _copy(params), state, opt.init(params), x, y, w, key, False)
    assert bool(halted) and int(bad) == first and int(o.count) == first
    assert np.isfinite(float(m["loss"]))  # the mean over the finite steps only
    assert all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree_util.tree_leaves(p))
    # halted on entry: nothing runs, the inputs come back unchanged
    p3, _, _, halted3, bad3, m3 = run(cfg, _copy(params), state, opt.init(params), x, y, w, key, True)
    assert bool(halted3) and int(bad3) == -1 and np.isnan(float(m3["loss"]))  # no step ran: no loss
    jax.tree_util.tree_map(np.testing.assert_array_equal, p3, params)
