"""Compile once per program, not per object (issue 15 item 6, issue 13 item 13)."""

import gc

import jax
import jax.numpy as jnp
import pytest

from jaxnet import nn
from jaxnet import optim as O
from jaxnet import train as T
from jaxnet.optim.program import program_key, program_ref
from jaxnet.train import epoch as E

LOSS = "softmax_cross_entropy_with_integer_labels"
X = jax.random.normal(jax.random.PRNGKey(1), (48, 4))
Y = (jnp.arange(48) % 3).astype(jnp.int32)


def _counting_penalty():
    calls = []

    def penalty(params):
        calls.append(1)  # runs only while jax traces the step
        return 0.0 * sum(jnp.sum(p) for p in jax.tree_util.tree_leaves(params))

    return penalty, calls


@pytest.mark.parametrize(
    "make",
    [
        lambda lr: O.adam(lr),
        lambda lr: O.sgd(lr, momentum=0.9, nesterov=True),
        lambda lr: O.chain(O.clip_by_global_norm(2 * lr), O.add_decayed_weights(lr, O.weights_only), O.adamw(lr)),
    ],
    ids=["adam", "nesterov", "chain"],
)
def test_learning_rate_loop_traces_once(make):
    model, (penalty, calls) = nn.MLP([8, 3]), _counting_penalty()
    losses = []
    for lr in (1e-3, 3e-3, 1e-2, 3e-2, 1e-1):
        r = T.fit(
            model,
            LOSS,
            make(lr),
            (X, Y),
            epochs=1,
            batch_size=16,
            key=jax.random.PRNGKey(0),
            progress=False,
            penalty=penalty,
        )
        losses.append(r.history.records[-1]["loss"])
        if lr == 1e-3:
            traced = len(calls)
    assert traced > 0 and len(calls) == traced  # later calls did not trace again
    assert len(set(losses)) == 5  # ... yet each ran with its own learning rate


def test_different_options_are_different_programs():
    assert program_key(O.adam(1e-3)) == program_key(O.adam(0.5, b1=0.5, b2=0.6, eps=1.0))
    assert program_key(O.adam(1e-3)) != program_key(O.adam(1e-3, amsgrad=True))
    assert program_key(O.rmsprop(0.1, momentum=0.5)) == program_key(O.rmsprop(0.2, momentum=0.7, alpha=0.5))
    assert program_key(O.rmsprop(0.1, momentum=0.5)) != program_key(O.rmsprop(0.1, momentum=0.5, centered=True))
    assert program_key(O.adagrad(0.1)) == program_key(O.adagrad(0.3, lr_decay=0.1, initial_accumulator_value=1.0))
    assert program_key(O.adam(1e-3)) != program_key(O.adamw(1e-3))
    assert program_key(O.sgd(0.1)) != program_key(O.sgd(0.1, momentum=0.9))
    sched = O.cosine_decay(0.1, 100)
    assert program_key(O.sgd(sched)) == program_key(O.sgd(sched))
    assert program_key(O.sgd(sched)) != program_key(O.sgd(O.cosine_decay(0.1, 100)))  # schedules by identity
    assert program_key(O.add_decayed_weights(0.1, {"a": True})) != program_key(O.add_decayed_weights(0.1, {"a": False}))
    hand = O.Optimizer(lambda p: (), lambda g, s, p=None: (g, s))
    assert program_key(hand) is None and program_ref(hand) == program_ref(O.Optimizer(*hand))
    assert program_ref(hand) != program_ref(O.Optimizer(hand.init, lambda g, s, p=None: (g, s)))
    assert program_key(O.chain(hand, O.sgd(0.1))) is None  # an unkeyed member: the chain compares by identity
    body = {"dense_0": True, "dense_2": False}
    assert program_key(O.freeze(body, O.adam(1e-3))) == program_key(O.freeze(dict(body), O.adam(1e-2)))
    assert program_key(O.freeze(body, O.adam(1e-3))) != program_key(O.freeze({"dense_0": False}, O.adam(1e-3)))
    assert program_key(O.accumulate(O.adam(1e-3), 4)) == program_key(O.accumulate(O.adam(0.1), 4))
    assert program_key(O.accumulate(O.adam(1e-3), 4)) != program_key(O.accumulate(O.adam(1e-3), 2))
    labels = {"dense_0": "a", "dense_2": "b"}
    mt = lambda lr: O.multi_transform({"a": O.sgd(lr), "b": O.adam(lr)}, labels)  # noqa: E731
    assert program_key(mt(0.1)) == program_key(mt(0.2))


def test_loss_by_name_and_fresh_optimizers_share_one_program():
    model = nn.MLP([8, 3])
    kw = dict(
        epochs=1, batch_size=16, key=jax.random.PRNGKey(0), progress=False, metrics={"accuracy": nn.losses.accuracy}
    )
    T.fit(model, LOSS, O.adam(1e-3), (X, Y), **kw)
    before = E.run_epochs_jit._cache_size()
    for lr in (2e-3, 4e-3, 8e-3):
        T.fit(model, "".join(LOSS), O.adam(lr), (X, Y), **kw)  # a new str object with the same name
    assert E.run_epochs_jit._cache_size() == before


def test_metrics_by_name_share_one_program_and_match_the_function():
    model = nn.MLP([8, 3])
    kw = dict(epochs=1, batch_size=16, key=jax.random.PRNGKey(0), progress=False)
    a = T.fit(model, LOSS, O.sgd(0.1), (X, Y), metrics={"acc": "accuracy"}, **kw)
    before = E.run_epochs_jit._cache_size()
    b = T.fit(model, LOSS, O.sgd(0.2), (X, Y), metrics={"acc": "".join("accuracy")}, **kw)
    assert E.run_epochs_jit._cache_size() == before
    c = T.fit(model, LOSS, O.sgd(0.1), (X, Y), metrics={"acc": nn.losses.accuracy}, **kw)
    assert a.history.records[-1]["acc"] == c.history.records[-1]["acc"]
    assert b.history.records[-1]["loss"] != a.history.records[-1]["loss"]
    with pytest.raises(ValueError, match="metrics: unknown metric name 'acuracy'"):
        T.fit(model, LOSS, O.sgd(0.1), (X, Y), metrics={"acc": "acuracy"}, **kw)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_memory_stays_flat_over_50_fits_with_fresh_optimizers():
    model = nn.MLP([32, 3])
    kw = dict(epochs=1, batch_size=16, key=jax.random.PRNGKey(0), progress=False)
    for i in range(5):  # warm up: first compile, allocator pools
        T.fit(model, LOSS, O.adam(1e-3 * (i + 1)), (X, Y), **kw)
    gc.collect()
    start = _rss_mb()
    for i in range(50):
        T.fit(model, LOSS, O.adam(1e-4 * (i + 1)), (X, Y), **kw)
    gc.collect()
    grown = _rss_mb() - start
    # each fresh optimizer used to keep its own compiled program: about 17 MB per call, 850 MB here
    assert grown < 40, f"resident memory grew {grown:.1f} MB over 50 fits"
