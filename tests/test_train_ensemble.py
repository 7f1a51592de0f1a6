"""Ensembles (§4.4.3): vmapped members, data subsets, per-member hyperparameters, averaging, gain."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _jaxpr_walk import has_dot, subjaxprs

import jaxnet as jn
from jaxnet.train import (
    average_probabilities,
    ensemble_report,
    fit,
    fit_ensemble,
    member_probabilities,
    member_weights,
    set_member_hyperparameter,
    unstack,
)

LOSS = "softmax_cross_entropy_with_integer_labels"


@pytest.fixture(scope="module")
def digits():
    x, y = jn.data.load_digits()
    return jn.data.train_test_split(jax.random.PRNGKey(0), x, y, test=0.2, stratify=True)


def test_ensemble_of_five_beats_its_mean_member_on_digits(digits):
    (xtr, ytr), (xte, yte) = digits
    model = jn.MLP([32, 10])
    r = fit_ensemble(
        model,
        LOSS,
        jn.sgd(0.1),
        (xtr, ytr),
        members=5,
        epochs=8,
        batch_size=32,
        key=jax.random.PRNGKey(1),
        subsets="bootstrap",
        progress=False,
    )
    rep = ensemble_report((model, r.params, r.state), xte, yte)
    assert len(rep["member_accuracy"]) == 5 and len(set(rep["member_accuracy"])) > 1  # members differ
    assert rep["ensemble"] > rep["mean_member"] and rep["gain"] == pytest.approx(rep["ensemble"] - rep["mean_member"])
    assert rep["ensemble"] > 0.9
    # the averaged probabilities are a distribution and give the reported accuracy
    p = average_probabilities((model, r.params, r.state), xte)
    np.testing.assert_allclose(np.asarray(p.sum(-1)), 1.0, rtol=1e-5)
    assert float(jnp.mean(jnp.argmax(p, -1) == yte)) == pytest.approx(rep["ensemble"])


def test_vmapped_member_equals_a_separate_fit():
    x, y = jn.data.circle(jax.random.PRNGKey(2), 200)
    model, opt = jn.MLP([8, 2]), jn.sgd(0.2)
    key = jax.random.PRNGKey(3)
    r = fit_ensemble(model, LOSS, opt, (x, y), members=3, epochs=3, batch_size=20, key=key, progress=False)
    assert jax.tree_util.tree_leaves(r.params)[0].shape[0] == 3 and len(r.histories) == 3
    single = fit(model, LOSS, opt, (x, y), epochs=3, batch_size=20, key=jax.random.fold_in(key, 1), progress=False)
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6), unstack(r.params, 1), single.params
    )
    assert r.histories[1]["loss"] == pytest.approx(single.history["loss"], rel=1e-5)


def test_member_weights():
    key = jax.random.PRNGKey(0)
    boot = np.asarray(member_weights(key, 4, 1000, "bootstrap"))
    assert boot.shape == (4, 1000) and (boot.sum(1) == 1000).all() and not (boot[0] == boot[1]).all()
    # a bootstrap sample leaves out about (1 - 1/n)^n ~ 1/e of the samples (binomial std ~ 15 of 1000)
    assert abs((boot == 0).mean(1) - np.exp(-1)).max() < 0.06
    dis = np.asarray(member_weights(key, 3, 10, "disjoint"))
    assert set(np.unique(dis)) == {0.0, 1.0} and (dis.sum(0) == 1).all() and sorted(dis.sum(1)) == [3, 3, 4]
    assert (np.asarray(member_weights(key, 2, 5)) == 1).all()
    with pytest.raises(ValueError, match="subsets must be None, 'bootstrap', 'disjoint'"):
        member_weights(key, 2, 5, "half")
    with pytest.raises(ValueError, match=r"must have shape \(2, 5\), got \(5,\)"):
        member_weights(key, 2, 5, np.ones(5))


def test_disjoint_subsets_and_per_member_learning_rates():
    x, y = jn.data.circle(jax.random.PRNGKey(4), 120)
    model = jn.MLP([8, 2])
    r = fit_ensemble(
        model,
        LOSS,
        jn.sgd(0.1),
        (x, y),
        members=3,
        epochs=2,
        batch_size=12,
        key=jax.random.PRNGKey(5),
        subsets="disjoint",
        hyperparams={"learning_rate": [0.0, 0.1, 0.3]},
        progress=False,
    )
    np.testing.assert_allclose(np.asarray(r.opt_state.learning_rate), [0.0, 0.1, 0.3])
    # a zero learning rate leaves member 0 at its initial parameters
    _, p0, _ = model.init(jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(5), 0), 0), (-1, 2))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_array_equal(a, b), unstack(r.params, 0), p0)
    moved = [float(jnp.abs(unstack(r.params, k)["dense_0"]["w"] - p0["dense_0"]["w"]).max()) for k in (1, 2)]
    assert all(m > 0 for m in moved)
    with pytest.raises(ValueError, match=r"no hyperparameter 'beta'; it has \['learning_rate'\]"):
        set_member_hyperparameter(r.opt_state, "beta", 0.5)
    with pytest.raises(ValueError, match=r"must have 3 values \(one per member\)"):
        fit_ensemble(
            model,
            LOSS,
            jn.sgd(0.1),
            (x, y),
            members=3,
            epochs=1,
            batch_size=12,
            key=jax.random.PRNGKey(5),
            hyperparams={"learning_rate": [0.1, 0.2]},
            progress=False,
        )


def test_each_member_has_its_own_nonfinite_guard():
    x, y = jn.data.circle(jax.random.PRNGKey(4), 120)
    model = jn.MLP([8, 2])
    r = fit_ensemble(
        model,
        LOSS,
        jn.sgd(0.1),
        (x * 1e4, y),
        members=2,
        epochs=3,
        batch_size=12,
        key=jax.random.PRNGKey(5),
        hyperparams={"learning_rate": [0.0, 1e8]},
        progress=False,
    )
    ok, blown = r.histories
    assert ok.stop_reason is None and len(ok) == 3
    assert blown.stop_reason == "nonfinite" and blown.nonfinite["epoch"] == 1 and len(blown) == 1
    assert all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree_util.tree_leaves(r.params))
    assert int(r.opt_state.count[1]) == blown.nonfinite["step"] and int(r.opt_state.count[0]) == 30


def test_a_blown_member_leaves_the_others_as_separate_fits():
    # one member's NaN makes every member replay its epoch with the guard; the replay must
    # reproduce the finite members' plain run
    x, y = jn.data.circle(jax.random.PRNGKey(4), 120)
    model, key = jn.MLP([8, 2]), jax.random.PRNGKey(5)
    r = fit_ensemble(
        model,
        LOSS,
        jn.sgd(0.1),
        (x, y),
        members=2,
        epochs=3,
        batch_size=12,
        key=key,
        hyperparams={"learning_rate": [0.1, 1e30]},
        progress=False,
    )
    assert r.histories[1].stop_reason == "nonfinite" and r.histories[0].stop_reason is None
    single = fit(
        model, LOSS, jn.sgd(0.1), (x, y), epochs=3, batch_size=12, key=jax.random.fold_in(key, 0), progress=False
    )
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6), unstack(r.params, 0), single.params
    )


def _scans_outside_cond(jaxpr) -> int:
    """``scan`` equations that always run (not inside a ``cond`` branch) and hold a matrix product (a step).

    Scans of index arithmetic (the binary search of ``jaxnet.data.permutation``) do not count.
    """
    count = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "cond":
            continue
        count += eqn.primitive.name == "scan" and any(map(has_dot, subjaxprs(eqn)))
        for inner in subjaxprs(eqn):
            count += _scans_outside_cond(inner)
    return count


def test_members_replay_an_epoch_only_when_one_of_them_is_non_finite():
    # under vmap a per-member lax.cond becomes a select that runs both branches: the guarded
    # replay must sit behind one decision for all members, else every epoch runs twice
    from jaxnet.train import epoch as E
    from jaxnet.train.ensemble import stack

    model, opt = jn.MLP([4, 2]), jn.sgd(0.1)
    cfg = E.make_config(model, LOSS, opt, n=16, batch_size=4, weighted=True)
    inits = [model.init(jax.random.PRNGKey(m), (-1, 2))[1:] for m in range(3)]
    carry = stack([E.initial_carry(cfg, p, s, opt.init(p)) for p, s in inits])
    x, y, w = jnp.ones((16, 2)), jnp.zeros((16,), jnp.int32), jnp.ones((3, 16))
    es = jnp.arange(2, dtype=jnp.int32)
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    jaxpr = jax.make_jaxpr(lambda c: E._run_members(cfg, c, x, y, w, None, keys, es, es >= 0))(carry).jaxpr
    assert _scans_outside_cond(jaxpr) == 2  # the loop over epochs and one plain scan per epoch


def test_members_of_different_architectures():
    x, y = jn.data.circle(jax.random.PRNGKey(6), 300)
    members = []
    for i, model in enumerate([jn.MLP([16, 2]), jn.MLP([8, 8, 2], "tanh"), jn.LogisticRegression(2)]):
        _, params, state = model.init(jax.random.PRNGKey(i), (-1, 2))  # averaging needs no training
        members.append((model, params, state))
    probs = member_probabilities(members, x)
    assert probs.shape == (3, 300, 2)  # the one-logit model is read as P(class 1) = sigmoid
    z = members[2][0].apply(members[2][1], members[2][2], x, train=False)[0][:, 0]
    np.testing.assert_allclose(np.asarray(probs[2, :, 1]), np.asarray(jax.nn.sigmoid(z)), rtol=1e-6)
    np.testing.assert_allclose(
        np.asarray(probs[0]),
        np.asarray(jax.nn.softmax(members[0][0].apply(members[0][1], members[0][2], x, train=False)[0])),
        rtol=1e-6,
    )
    avg = average_probabilities(members, x)
    np.testing.assert_allclose(np.asarray(avg), np.asarray(probs).mean(0), rtol=1e-6)
    rep = ensemble_report(members, x, y)
    expect = [float(np.mean(np.argmax(np.asarray(p), -1) == np.asarray(y))) for p in probs]
    assert rep["member_accuracy"] == pytest.approx(expect) and rep["best_member"] == pytest.approx(max(expect))
    assert rep["ensemble"] == pytest.approx(float(np.mean(np.argmax(np.asarray(avg), -1) == np.asarray(y))))
    with pytest.raises(TypeError, match=r"members\[1\] must be \(model, params, state\)"):
        member_probabilities([members[0], "x"], x)
    with pytest.raises(ValueError, match="disagree on the output shape"):
        member_probabilities([members[0], (jn.MLP([3]), *jn.MLP([3]).init(jax.random.PRNGKey(0), (-1, 2))[1:])], x)
