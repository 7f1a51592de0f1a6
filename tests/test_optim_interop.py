"""optax interop both ways: optax transforms in jaxnet's training, jaxnet optimizers in optax.chain."""

import chex
import jax
import jax.numpy as jnp
import pytest

from jaxnet import nn
from jaxnet import optim as O
from jaxnet import train as T

optax = pytest.importorskip("optax")  # the `test` extra installs it; the core never imports it

LOSS = "softmax_cross_entropy_with_integer_labels"


def _data():
    x = jax.random.normal(jax.random.PRNGKey(1), (64, 5))
    y = (jnp.arange(64) % 3).astype(jnp.int32)
    return x, y


def _fit(opt, **kw):
    return T.fit(
        nn.MLP([8, 3]), LOSS, opt, _data(), epochs=2, batch_size=16, key=jax.random.PRNGKey(0), progress=False, **kw
    )


def test_fit_with_optax_adam_equals_jaxnet_adam():
    ours, theirs = _fit(O.adam(1e-2)), _fit(optax.adam(1e-2))
    chex.assert_trees_all_close(ours.params, theirs.params, rtol=1e-5, atol=1e-6)
    assert isinstance(theirs.opt_state[0], optax.ScaleByAdamState)


def test_train_step_with_optax_chain_and_extra_args_transform():
    tx = optax.chain(optax.clip_by_global_norm(0.5), optax.sgd(0.1))
    assert isinstance(tx, optax.GradientTransformationExtraArgs)
    model = nn.MLP([8, 3])
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 5))
    x, y = _data()
    ref = O.chain(O.clip_by_global_norm(0.5), O.sgd(0.1))
    step_theirs = T.make_train_step(model, LOSS, tx, donate=False)
    step_ours = T.make_train_step(model, LOSS, ref, donate=False)
    p1, _, _, _ = step_theirs(params, state, tx.init(params), (x, y), None)
    p2, _, _, _ = step_ours(params, state, ref.init(params), (x, y), None)
    chex.assert_trees_all_close(p1, p2, rtol=1e-6, atol=1e-7)
    assert not jnp.allclose(p1["dense_0"]["w"], params["dense_0"]["w"])  # it moved


def _steps(opt, n=5):
    model = nn.MLP([8, 3])
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 5))
    step, opt_state = T.make_train_step(model, LOSS, opt), opt.init(params)
    for _ in range(n):
        params, state, opt_state, _ = step(params, state, opt_state, _data(), None)
    return params, opt_state


def test_jaxnet_chain_and_switch_take_optax_members():
    mixed, _ = _steps(O.chain(optax.clip_by_global_norm(1.0), O.sgd(0.05)))
    pure, _ = _steps(O.chain(O.clip_by_global_norm(1.0), O.sgd(0.05)))
    chex.assert_trees_all_close(mixed, pure, rtol=1e-5, atol=1e-6)
    _, sw = _steps(O.switch(optax.adam(1e-2), O.sgd(0.05), at=3))
    assert bool(sw.switched) and int(sw.first[0].count) == 3


def test_jaxnet_optimizers_inside_optax_chain():
    params = {"w": jnp.array([1.0, -2.0, 3.0]), "b": jnp.array([0.5])}
    grads = {"w": jnp.array([0.3, 4.0, -1.0]), "b": jnp.array([2.0])}
    ours = optax.chain(optax.clip_by_global_norm(1.0), O.adam(1e-2))
    ref = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2))
    s1, s2 = ours.init(params), ref.init(params)
    p1 = p2 = params
    for _ in range(3):
        u1, s1 = ours.update(grads, s1, p1)
        u2, s2 = ref.update(grads, s2, p2)
        p1, p2 = optax.apply_updates(p1, u1), optax.apply_updates(p2, u2)
    chex.assert_trees_all_close(p1, p2, rtol=1e-6)
    # optax.chain passes extra args (e.g. value=) along; jaxnet's optimizers ignore them through optax's wrapper
    u, _ = ours.update(grads, s1, p1, value=jnp.asarray(1.0))
    chex.assert_tree_all_finite(u)


def test_fit_ensemble_and_train_epoch_take_optax():
    x, y = _data()
    r = T.fit_ensemble(
        nn.MLP([8, 3]),
        LOSS,
        optax.sgd(0.1),
        (x, y),
        members=2,
        epochs=2,
        batch_size=16,
        key=jax.random.PRNGKey(0),
        progress=False,
    )
    assert r.params["dense_0"]["w"].shape == (2, 5, 8)
    model = nn.MLP([8, 3])
    epoch = T.make_train_epoch(model, LOSS, optax.sgd(0.1), batch_size=16, n=64)
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 5))
    _, _, _, logs = epoch(params, state, optax.sgd(0.1).init(params), (x, y), jax.random.PRNGKey(2))
    assert jnp.isfinite(logs["loss"])


@pytest.mark.parametrize("bad", [object(), 3, "adam", (lambda p: p)])
def test_non_optimizers_are_refused_by_name(bad):
    with pytest.raises(TypeError, match="fit: optimizer must be an Optimizer: an object with init"):
        _fit(bad)
    with pytest.raises(TypeError, match=r"chain\(\) argument 1 must be an Optimizer"):
        O.chain(O.sgd(0.1), bad)
