"""Gradient accumulation equals one step on the concatenated batch (issue 15 item 4)."""

import chex
import jax
import jax.numpy as jnp
import pytest

from jaxnet import nn
from jaxnet import optim as O
from jaxnet import train as T
from jaxnet.nn import losses

LOSS = "softmax_cross_entropy_with_integer_labels"


def _setup(dtype=jnp.float32):
    model = nn.MLP([8, 3])
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 5))
    params = jax.tree_util.tree_map(lambda p: p.astype(dtype), params)
    x = jax.random.normal(jax.random.PRNGKey(1), (32, 5), dtype)
    y = (jnp.arange(32) % 3).astype(jnp.int32)
    grad = jax.jit(
        jax.grad(
            lambda p, xb, yb: losses.softmax_cross_entropy_with_integer_labels(
                model.apply(p, state, xb, train=True)[0], yb
            )
        )
    )
    return params, x, y, grad


@pytest.mark.parametrize("make", [lambda: O.sgd(0.1, momentum=0.9), lambda: O.adam(0.01)], ids=["momentum", "adam"])
def test_k_micro_batches_equal_one_step_on_their_concatenation(x64, make):
    params, x, y, grad = _setup(jnp.float64)
    k = 4
    acc = O.accumulate(make(), every=k)
    p, s = params, acc.init(params)
    upd = jax.jit(acc.update)
    big, bs = make(), None
    q, bs = params, big.init(params)
    for rnd in range(2):  # two full rounds: the sum resets after each update
        for j in range(k):
            sl = slice(8 * j, 8 * (j + 1))
            u, s = upd(grad(p, x[sl] * (rnd + 1), y[sl]), s, p)
            if j < k - 1:
                assert all(float(jnp.abs(a).max()) == 0 for a in jax.tree_util.tree_leaves(u))
            p = O.apply_updates(p, u)
        u, bs = big.update(grad(q, x * (rnd + 1), y), bs, q)
        q = O.apply_updates(q, u)
        chex.assert_trees_all_close(p, q, rtol=1e-12, atol=1e-12)
    assert int(s.count) == 2 * k and int(s.inner.count) == 2


def test_accumulate_in_fit_equals_a_k_times_larger_batch():
    _, x, y, _ = _setup()
    model = nn.MLP([8, 3])
    kw = dict(epochs=2, key=jax.random.PRNGKey(3), progress=False)
    small = T.fit(model, LOSS, O.accumulate(O.adam(0.01), every=4), (x, y), batch_size=8, **kw)
    large = T.fit(model, LOSS, O.adam(0.01), (x, y), batch_size=32, **kw)
    # shuffle_batches cuts one permutation: 4 consecutive batches of 8 are one batch of 32
    chex.assert_trees_all_close(small.params, large.params, rtol=1e-5, atol=1e-6)


def test_accumulate_keeps_float32_sums_for_bfloat16_grads():
    acc = O.accumulate(O.sgd(1.0), every=2)
    s = acc.init({"w": jnp.zeros(3, jnp.bfloat16)})
    assert s.grad_sum["w"].dtype == jnp.float32
    u, s = acc.update({"w": jnp.full(3, 1.0, jnp.bfloat16)}, s, None)
    assert u["w"].dtype == jnp.bfloat16


@pytest.mark.parametrize("every", [0, -1, 2.0, True, "2"])
def test_bad_every_raises(every):
    with pytest.raises(TypeError, match=f"accumulate: every must be a positive int, got {every!r}"):
        O.accumulate(O.sgd(0.1), every=every)
