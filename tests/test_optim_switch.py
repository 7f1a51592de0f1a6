"""switch: Adam then SGD, at a step, on a predicate, or on a trigger from outside the step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet.optim as O


def params0():
    """Fresh params in the default float dtype (float64 inside the x64 tests)."""
    return {"w": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array([0.3])}


def grad(p):
    return jax.grad(lambda q: jnp.sum((q["w"] - 0.2) ** 2 * jnp.array([1.0, 5.0, 20.0])) + jnp.sum(q["b"] ** 2))(p)


def run(opt, params, steps, state=None):
    """``steps`` updates in one scan; returns params and state."""

    def body(carry, _):
        p, s = carry
        u, s = opt.update(grad(p), s, p)
        return (O.apply_updates(p, u), s), None

    (p, s), _ = jax.lax.scan(body, (params, opt.init(params) if state is None else state), None, length=steps)
    return p, s


def first_then_second(k, n):
    p, _ = run(O.adam(0.05), params0(), k)
    p, _ = run(O.sgd(0.01, momentum=0.9), p, n - k)  # SGD starts from a fresh state
    return p


@pytest.mark.parametrize("at", [7, lambda s: s.count >= 7, lambda s: s.first.count >= 7])
def test_switch_hands_over_at_the_step(at, x64):
    opt = O.switch(O.adam(0.05), O.sgd(0.01, momentum=0.9), at)
    p, s = run(opt, params0(), 20)
    want = first_then_second(7, 20)
    for a, b in zip(jax.tree_util.tree_leaves(p), jax.tree_util.tree_leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    assert bool(s.switched) and int(s.first.count) == 7 and int(s.second.count) == 13


def test_switch_at_zero_is_the_second_optimizer(x64):
    p, _ = run(O.switch(O.adam(0.05), O.sgd(0.01), 0), params0(), 5)
    q, _ = run(O.sgd(0.01), params0(), 5)
    np.testing.assert_allclose(p["w"], q["w"], rtol=1e-14)


def test_predicate_on_optimizer_state_latches():
    # Hand over once Adam's second moment has decayed below a threshold; never switch back.
    opt = O.switch(O.adam(0.05), O.sgd(0.01), lambda s: s.count == 3)
    _, s = run(opt, params0(), 10)
    assert bool(s.switched) and int(s.first.count) == 3 and int(s.second.count) == 7


def test_trigger_switch_from_outside_does_not_recompile():
    traces = []
    opt = O.switch(O.adam(0.05), O.sgd(0.01), at=10**9)

    @jax.jit
    def step(p, s):
        traces.append(1)
        u, s = opt.update(grad(p), s, p)
        return O.apply_updates(p, u), s

    p, s = params0(), opt.init(params0())
    for _ in range(3):
        p, s = step(p, s)
    s = O.trigger_switch(s)  # e.g. the validation loss stopped improving
    for _ in range(2):
        p, s = step(p, s)
    assert len(traces) == 1
    assert int(s.first.count) == 3 and int(s.second.count) == 2 and bool(s.switched)


def test_switch_under_vmap_with_batched_steps():
    opt = O.switch(O.adam(0.05), O.sgd(0.01), at=2)
    params = jax.tree_util.tree_map(lambda x: jnp.stack([x, 2 * x]), params0())
    states = jax.vmap(opt.init)(params)
    states = states._replace(switched=jnp.array([False, True]))
    u, s = jax.vmap(lambda p, st: opt.update(grad(p), st, p))(params, states)
    np.testing.assert_allclose(
        u["w"][1], -0.01 * grad(jax.tree_util.tree_map(lambda x: 2 * x, params0()))["w"], rtol=1e-6
    )
    assert list(np.asarray(s.first.count)) == [1, 0]


def test_switch_input_checks():
    with pytest.raises(ValueError, match="switch: at must be a step >= 0, got -1"):
        O.switch(O.adam(0.1), O.sgd(0.1), -1)
    with pytest.raises(TypeError, match="switch: at must be an int step or a predicate"):
        O.switch(O.adam(0.1), O.sgd(0.1), 2.5)
    with pytest.raises(TypeError, match="switch: second must be an Optimizer"):
        O.switch(O.adam(0.1), "sgd", 3)
    opt = O.switch(O.adam(0.1), O.sgd(0.1), lambda s: jnp.ones(2, bool))
    with pytest.raises(ValueError, match=r"predicate at must return a scalar bool, got shape \(2,\)"):
        opt.update(params0(), opt.init(params0()), params0())
