"""A whole epoch as one lax.scan equals the same epoch stepped from Python; batch layout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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


def test_epoch_is_one_dispatch_of_one_scan():
    x, y = _data()
    model = jn.MLP([8, 3])
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 5))
    opt = jn.sgd(0.1)
    epoch = make_train_epoch(model, LOSS, opt, batch_size=10, n=50)
    jaxpr = jax.make_jaxpr(epoch)(params, state, opt.init(params), (x, y), jax.random.PRNGKey(0))
    inner = jaxpr.jaxpr.eqns
    assert len(inner) == 1 and inner[0].primitive.name in ("pjit", "jit")
    text = str(jaxpr)
    # The whole epoch is one scan over its 5 steps, no Python loop unrolled. A second scan of
    # the same length is the non-finite replay, which runs only after a NaN/inf (a cond branch).
    assert text.count("scan[") == 2 and text.count("length=5") == 2
    assert text.count("cond[") >= 1
