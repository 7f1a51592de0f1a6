"""Hyperparameters as state arrays: no recompilation, vmap over learning rates, jit/scan/vmap of states."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet.optim as O

PARAMS = {"dense": {"w": jnp.array([[0.5, -1.0], [2.0, 0.25]]), "b": jnp.array([0.1, -0.2])}}
GRADS = jax.tree_util.tree_map(lambda p: 0.3 * p + 0.05, PARAMS)

ALL = {
    "sgd": lambda lr: O.sgd(lr),
    "momentum": lambda lr: O.sgd(lr, momentum=0.9),
    "nesterov": lambda lr: O.sgd(lr, momentum=0.9, nesterov=True),
    "adagrad": lambda lr: O.adagrad(lr),
    "rmsprop": lambda lr: O.rmsprop(lr, momentum=0.5, centered=True),
    "adam": lambda lr: O.adam(lr, amsgrad=True),
    "adamw": lambda lr: O.adamw(lr),
}


@pytest.mark.parametrize("name", sorted(ALL))
def test_changing_the_learning_rate_does_not_recompile(name):
    traces = []
    opt = ALL[name](0.1)

    @jax.jit
    def step(grads, state, params):
        traces.append(1)
        return opt.update(grads, state, params)

    state = opt.init(PARAMS)
    u1, _ = step(GRADS, state, PARAMS)
    state2 = O.set_hyperparameter(state, "learning_rate", 0.3)
    u3, _ = step(GRADS, state2, PARAMS)
    assert len(traces) == 1
    # Every update rule is linear in the learning rate: the new rate took effect.
    for a, b in zip(jax.tree_util.tree_leaves(u1), jax.tree_util.tree_leaves(u3), strict=True):
        np.testing.assert_allclose(b, 3 * a, rtol=1e-5)


def test_changing_other_hyperparameters_does_not_recompile():
    traces = []
    opt = O.chain(O.clip_by_global_norm(10.0), O.add_decayed_weights(0.01), O.adam(0.1))

    @jax.jit
    def step(grads, state, params):
        traces.append(1)
        return opt.update(grads, state, params)

    state = opt.init(PARAMS)
    # Two different gradients first: at step one Adam's update is about lr * sign(g) whatever b1, b2.
    _, state = step(jax.tree_util.tree_map(lambda g: -3 * g, GRADS), state, PARAMS)
    for name, value in [("b1", 0.5), ("b2", 0.9), ("eps", 1e-3), ("weight_decay", 0.1), ("max_norm", 0.01)]:
        before, _ = step(GRADS, state, PARAMS)
        state = O.set_hyperparameter(state, name, value)
        after, _ = step(GRADS, state, PARAMS)
        assert not np.allclose(before["dense"]["w"], after["dense"]["w"]), name
    assert len(traces) == 1
    assert float(O.hyperparameters(state)["max_norm"]) == pytest.approx(0.01)


def _train(opt_factory, lr, steps=25):
    """Fit a tiny linear regression; returns the final params."""
    x = jnp.linspace(-1, 1, 16)[:, None] * jnp.array([[1.0, 2.0]])
    y = x @ jnp.array([1.5, -0.5]) + 0.3
    params = {"w": jnp.zeros(2), "b": jnp.zeros([])}
    opt = opt_factory(0.0)
    state = O.set_hyperparameter(opt.init(params), "learning_rate", lr)

    def loss(p):
        return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)

    def body(carry, _):
        p, s = carry
        u, s = opt.update(jax.grad(loss)(p), s, p)
        return (O.apply_updates(p, u), s), None

    (params, _), _ = jax.lax.scan(body, (params, state), None, length=steps)
    return params


@pytest.mark.parametrize("name", ["momentum", "adam", "rmsprop"])
def test_vmap_over_learning_rates_equals_separate_runs(name, x64):
    lrs = jnp.array([0.01, 0.05, 0.2])
    together = jax.vmap(lambda lr: _train(ALL[name], lr))(lrs)
    for i, lr in enumerate([0.01, 0.05, 0.2]):
        # A separate run, built the ordinary way with a Python float.
        alone = _train(lambda _, lr=lr: ALL[name](lr), lr)
        for a, b in zip(jax.tree_util.tree_leaves(together), jax.tree_util.tree_leaves(alone), strict=True):
            np.testing.assert_allclose(a[i], b, rtol=1e-12, atol=1e-14)
    # The copies really differ.
    assert not np.allclose(together["w"][0], together["w"][2])


def test_optimizer_built_inside_vmap_with_a_traced_rate(x64):
    lrs = jnp.array([0.01, 0.1])

    def run(lr):
        opt = O.adam(lr)
        u, _ = opt.update(GRADS, opt.init(PARAMS))
        return u

    batched = jax.vmap(run)(lrs)
    # The leaves are float32: a traced and a constant-folded rate may round one ulp apart.
    np.testing.assert_allclose(batched["dense"]["w"][1], run(0.1)["dense"]["w"], rtol=2e-7)
    assert not np.allclose(batched["dense"]["w"][0], batched["dense"]["w"][1])


def test_vmap_over_a_batch_of_states():
    opt = O.adam(0.1)
    batch = jax.tree_util.tree_map(lambda p: jnp.stack([p, 2 * p, -p]), PARAMS)
    states = jax.vmap(opt.init)(batch)
    assert states.mu["dense"]["w"].shape == (3, 2, 2) and states.count.shape == (3,)
    updates, states = jax.jit(jax.vmap(opt.update))(batch, states, batch)
    single, _ = opt.update(jax.tree_util.tree_map(lambda p: 2 * p, PARAMS), opt.init(PARAMS))
    np.testing.assert_allclose(updates["dense"]["w"][1], single["dense"]["w"], rtol=1e-6)


def test_state_is_a_pytree_of_named_tuples_and_scans():
    opt = O.chain(O.clip_by_value(1.0), O.switch(O.adam(0.1), O.sgd(0.1, momentum=0.9), at=3))
    state = opt.init(PARAMS)
    assert isinstance(state, O.ChainState)
    assert isinstance(state.states[1], O.SwitchState) and isinstance(state.states[1].first, O.AdamState)

    def body(s, g):
        u, s = opt.update(g, s, PARAMS)
        return s, u["dense"]["b"]

    grads = jax.tree_util.tree_map(lambda g: jnp.stack([g] * 6), GRADS)
    final, us = jax.lax.scan(body, state, grads)
    assert int(final.states[1].count) == 6 and bool(final.states[1].switched)
    assert int(final.states[1].first.count) == 3 and int(final.states[1].second.count) == 3
    assert us.shape == (6, 2)


def test_set_hyperparameter_errors():
    state = O.adam(0.1).init(PARAMS)
    with pytest.raises(
        ValueError, match=r"no hyperparameter 'momentum'; it has \['b1', 'b2', 'eps', 'eps_root', 'learning_rate'\]"
    ):
        O.set_hyperparameter(state, "momentum", 0.9)
    with pytest.raises(ValueError, match=r"set_hyperparameter: learning_rate .* got -1\.0"):
        O.set_hyperparameter(state, "learning_rate", -1.0)
    with pytest.raises(ValueError, match=r"set_hyperparameter: b2 .* got 1\.0"):
        O.set_hyperparameter(state, "b2", 1.0)
    with pytest.raises(ValueError, match=r"learning_rate must be a scalar, got shape \(3,\)"):
        O.set_hyperparameter(state, "learning_rate", np.ones(3))
    scheduled = O.sgd(O.cosine_decay(0.1, 10)).init(PARAMS)
    with pytest.raises(ValueError, match="learning_rate of SgdState is None: it follows a schedule"):
        O.set_hyperparameter(scheduled, "learning_rate", 0.1)


def test_set_hyperparameter_keeps_dtype_and_weak_type():
    state = O.sgd(0.1).init(PARAMS)
    new = O.set_hyperparameter(state, "learning_rate", 0.5)
    assert new.learning_rate.dtype == state.learning_rate.dtype
    assert new.learning_rate.weak_type == state.learning_rate.weak_type
    # rebuilding one state's Hyperparameters is the other documented way.
    alt = state._replace(hyper=state.hyper.replace("learning_rate", 0.5))
    np.testing.assert_array_equal(alt.learning_rate, new.learning_rate)


@pytest.mark.parametrize(
    "build, names",
    [
        (lambda: O.adam(1e-3), ["learning_rate", "b1", "b2", "eps", "eps_root"]),
        (lambda: O.adamw(1e-3), ["learning_rate", "b1", "b2", "eps", "eps_root", "weight_decay"]),
        (lambda: O.rmsprop(0.01, momentum=0.9), ["learning_rate", "alpha", "eps", "momentum"]),
        (lambda: O.adagrad(0.1), ["learning_rate", "lr_decay", "eps"]),
        (lambda: O.sgd(0.1, momentum=0.9, dampening=0.1), ["learning_rate", "momentum", "dampening"]),
    ],
)
def test_hyperparameters_are_one_leaf_of_the_state(build, names):
    # one input buffer for a compiled step, however many hyperparameters (see benchmarks/step_overhead.py)
    state = build().init(PARAMS)
    hyper = state.hyper
    assert list(hyper.names) == names and hyper.values.shape == (len(names),)
    assert jax.tree_util.tree_leaves(hyper) == [hyper.values]
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(state)[0]]
    # besides the param-shaped buffers (moments), two leaves: the count and the hyperparameters,
    # whose path names them (a checkpoint stores it under that name)
    assert [p for p in paths if "dense" not in p] == [".count", f".hyper.{','.join(names)}"]
    for i, name in enumerate(names):  # each readable by name and as a property
        assert float(hyper[name]) == float(getattr(state, name)) == float(hyper.values[i])


def test_hyperparameters_stacked_scheduled_and_errors():
    state = O.sgd(O.exponential_decay(0.1, 0.01), momentum=0.9).init(PARAMS)
    assert state.learning_rate is None and state.hyper.scheduled == ("learning_rate",)
    with pytest.raises(KeyError, match="'learning_rate' has no stored value: it follows a schedule"):
        state.hyper["learning_rate"]
    with pytest.raises(KeyError, match=r"'b1' has no stored value: it has \['momentum'\]"):
        state.hyper["b1"]
    with pytest.raises(KeyError, match="'learning_rate' has no stored value: it follows a schedule"):
        state.hyper.replace("learning_rate", 0.1)
    # stacked copies (an ensemble): values [K, n], a read gives [K], a replace broadcasts over K
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *(O.adam(lr).init(PARAMS) for lr in (0.1, 0.2, 0.3)))
    np.testing.assert_allclose(stacked.learning_rate, [0.1, 0.2, 0.3], rtol=1e-6)
    assert stacked.hyper.values.shape == (3, 5)
    np.testing.assert_allclose(stacked.hyper.replace("b2", 0.5)["b2"], [0.5] * 3)
    assert "learning_rate=0.001" in repr(O.adam(1e-3).init(PARAMS).hyper)


def test_schedule_is_evaluated_on_the_count():
    opt = O.sgd(O.step_decay(1.0, 0.5, every=2))
    state = opt.init(PARAMS)
    seen = []
    for _ in range(5):
        u, state = opt.update(GRADS, state)
        seen.append(float(u["dense"]["b"][0] / -GRADS["dense"]["b"][0]))
    np.testing.assert_allclose(seen, [1.0, 1.0, 0.5, 0.5, 0.25], rtol=1e-6)


@pytest.mark.parametrize("name", sorted(ALL))
def test_state_types_are_stable_across_an_update(name):
    # Weakly typed params (jnp.asarray(0.3)) must not give a state whose types change after one
    # step: that would retrace a jitted step and break a lax.scan carry.
    params = {"w": jnp.asarray(0.3), "v": jnp.ones(2)}
    opt = ALL[name](0.1)
    state = opt.init(params)
    _, new = jax.eval_shape(opt.update, params, state, params)
    for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(new), strict=True):
        assert (a.shape, a.dtype, a.weak_type) == (b.shape, b.dtype, b.weak_type)
