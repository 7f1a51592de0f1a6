"""What the chapter names that jaxnet added for it: reduce-on-plateau inside fit, batch norm with the
plain average of the last N batches, the chapter's exact Adagrad, and MLP(dropout_mode="chapter")."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet import nn
from jaxnet import optim as O
from jaxnet import train as T
from jaxnet.train import epoch as E
from jaxnet.train.plateau import PlateauState, plateau_step


# ---------------------------------------------------------------- reduce on plateau
def test_plateau_rule_counts_patience_cooldown_and_mode():
    rule = T.ReduceOnPlateau(patience=2, factor=0.5, cooldown=1)
    s, cuts = PlateauState(), []
    for v in [1.0, 0.9, 0.95, 0.91, 0.92, 0.93, 0.94, 0.5]:
        s, cut = plateau_step(rule, s, v)
        cuts.append(cut)
    # improvements at 1.0, 0.9; two misses -> cut; one epoch of cooldown; two more misses -> cut
    assert cuts == [False, False, False, True, False, False, True, False]
    assert s.cuts == 2 and s.best == 0.5
    maxi = T.ReduceOnPlateau(monitor="val_accuracy", patience=1)
    s, cut = plateau_step(maxi, PlateauState(best=0.9), 0.95)
    assert not cut and s.best == 0.95
    _, cut = plateau_step(maxi, s, float("nan"))
    assert cut  # a non-finite value is no improvement


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"factor": 1.0}, "factor must be in \\(0, 1\\)"),
        ({"patience": 0}, "patience must be an int >= 1"),
        ({"cooldown": -1}, "cooldown must be an int >= 0"),
        ({"min_lr": -1.0}, "min_lr must be >= 0"),
        ({"mode": "up"}, "mode must be 'min', 'max' or 'auto'"),
    ],
)
def test_plateau_rule_rejects_bad_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        T.ReduceOnPlateau(**kw)


def _blobs():
    x = jax.random.normal(jax.random.PRNGKey(0), (128, 4))
    return x, (x[:, 0] + 0.3 * x[:, 1] > 0).astype(jnp.int32)


def test_fit_cuts_the_rate_on_a_plateau_without_recompiling():
    x, y = _blobs()
    model, opt = nn.MLP([8, 2], "tanh"), O.sgd(0.1)
    common = dict(epochs=12, batch_size=32, key=jax.random.PRNGKey(1), validation=(x, y), progress=False)
    plain = T.fit(model, "softmax_cross_entropy_with_integer_labels", opt, (x, y), **common)
    compiled = E.run_epochs_jit._cache_size()
    # min_delta so large that no epoch after the first counts as an improvement: a cut every 3 epochs
    rule = T.ReduceOnPlateau(patience=3, factor=0.5, min_delta=10.0)
    res = T.fit(model, "softmax_cross_entropy_with_integer_labels", opt, (x, y), reduce_on_plateau=rule, **common)
    assert E.run_epochs_jit._cache_size() == compiled  # the rate is state: same program
    lrs = [r["learning_rate"] for r in res.history.records]
    assert lrs == pytest.approx([0.1] * 4 + [0.05] * 3 + [0.025] * 3 + [0.0125] * 2)
    assert float(res.opt_state.hyper["learning_rate"]) == pytest.approx(0.1 * 0.5**3)
    assert "learning_rate" not in plain.history.records[0]
    # before the first cut the runs agree exactly
    assert res.history.records[2]["loss"] == plain.history.records[2]["loss"]


def test_fit_reduce_on_plateau_errors():
    x, y = _blobs()
    model = nn.MLP([4, 2])
    kw = dict(epochs=2, batch_size=32, key=jax.random.PRNGKey(0), progress=False)
    loss = "softmax_cross_entropy_with_integer_labels"
    with pytest.raises(ValueError, match="reduce_on_plateau monitors 'val_loss'"):
        T.fit(model, loss, O.sgd(0.1), (x, y), reduce_on_plateau=T.ReduceOnPlateau(), **kw)
    with pytest.raises(ValueError, match="follows a schedule"):
        T.fit(
            model,
            loss,
            O.sgd(O.exponential_decay(0.1, 0.01)),
            (x, y),
            validation=0.25,
            reduce_on_plateau=T.ReduceOnPlateau(),
            **kw,
        )


def test_plateau_cut_respects_min_lr_in_a_chain():
    opt = O.chain(O.clip_by_global_norm(1.0), O.adam(1e-3))
    s = opt.init({"w": jnp.ones(3)})
    rule = T.ReduceOnPlateau(factor=0.1, min_lr=5e-4)
    s = T.plateau.cut(rule, s)
    assert float(O.hyperparameters(s)["learning_rate"]) == pytest.approx(5e-4)


# ---------------------------------------------------------------- batch norm over the last N batches
def test_window_batchnorm_eval_uses_the_plain_average_of_the_last_batches(x64, rng):
    layer = nn.WindowBatchNorm(window=2, affine=False, dtype=jnp.float64)
    _, params, state = layer.init(jax.random.PRNGKey(0), (-1, 3))
    x_eval = rng.normal(size=(5, 3))
    y0, _ = layer.apply(params, state, x_eval, train=False)
    np.testing.assert_allclose(y0, x_eval / np.sqrt(1 + 1e-5), rtol=1e-12)  # nothing seen: mean 0, var 1
    batches = [rng.normal(loc=i, scale=1 + i, size=(6, 3)) for i in range(3)]
    for b in batches:
        y, state = layer.apply(params, state, b, train=True)
        np.testing.assert_allclose(y, (b - b.mean(0)) / np.sqrt(b.var(0) + 1e-5), rtol=1e-10)
    mean = np.mean([b.mean(0) for b in batches[1:]], 0)  # only the last two
    var = np.mean([b.var(0, ddof=1) for b in batches[1:]], 0)
    y, same = layer.apply(params, state, x_eval, train=False)
    np.testing.assert_allclose(y, (x_eval - mean) / np.sqrt(var + 1e-5), rtol=1e-10)
    assert int(same["count"]) == 3


def test_window_batchnorm_trains_exactly_like_batchnorm(x64, rng):
    """Same output and same gradients in training: both normalise with the batch's own statistics."""
    x = jnp.asarray(rng.normal(size=(8, 3)))
    outs = []
    for layer in (nn.WindowBatchNorm(4, dtype=jnp.float64), nn.BatchNorm(dtype=jnp.float64)):
        _, params, state = layer.init(jax.random.PRNGKey(0), (-1, 3))
        params = {"gamma": jnp.asarray([1.0, 2.0, 0.5]), "beta": jnp.asarray([0.1, 0.0, -0.3])}

        def loss(p, xx, layer=layer, state=state):
            y, _ = layer.apply(p, state, xx, train=True)
            return jnp.sum(jnp.sin(y))

        outs.append((loss(params, x), *jax.grad(loss, (0, 1))(params, x)))
    chex.assert_trees_all_close(outs[0], outs[1], rtol=1e-12, atol=1e-14)


def test_window_batchnorm_mask_leaves_padding_out(x64, rng):
    layer = nn.WindowBatchNorm(window=4, dtype=jnp.float64)
    _, params, state = layer.init(jax.random.PRNGKey(0), (-1, 2))
    x = rng.normal(size=(6, 2))
    padded = np.concatenate([x, 100 + np.zeros((2, 2))])
    mask = np.array([True] * 6 + [False] * 2)
    y, s = layer.apply(params, state, padded, train=True, mask=mask)
    y_ref, s_ref = layer.apply(params, state, x, train=True)
    np.testing.assert_allclose(y[:6], y_ref, rtol=1e-10)
    np.testing.assert_allclose(s["vars"], s_ref["vars"], rtol=1e-10)


def test_window_batchnorm_errors_and_in_a_model():
    with pytest.raises(ValueError, match="window must be an int >= 1"):
        nn.WindowBatchNorm(window=0)
    with pytest.raises(ValueError, match="at least 2 values per channel"):
        layer = nn.WindowBatchNorm(3)
        _, p, s = layer.init(jax.random.PRNGKey(0), (-1, 2))
        layer.apply(p, s, jnp.ones((1, 2)), train=True)
    model = nn.serial(nn.Dense(4), nn.WindowBatchNorm(3), nn.Relu(), nn.Dense(2))
    x, y = _blobs()
    res = T.fit(
        model, "softmax_cross_entropy_with_integer_labels", O.adam(1e-2), (x, y), epochs=3, batch_size=32,
        key=jax.random.PRNGKey(0), progress=False,
    )  # fmt: skip
    assert int(res.state[nn.layer_keys(model.layers)[1]]["count"]) == 3 * (128 // 32)  # batches seen


# ---------------------------------------------------------------- the chapter's Adagrad
def test_adagrad_in_the_chapters_exact_form(x64, rng):
    """``w <- w - lr g / sqrt(eps0 + sum g^2)``: eps0 inside the root is initial_accumulator_value, eps = 0."""
    lr, eps0 = 0.3, 1e-2
    opt = O.adagrad(lr, initial_accumulator_value=eps0, eps=0.0)
    w = rng.normal(size=(4,))
    s, params, acc = opt.init(jnp.asarray(w)), jnp.asarray(w), np.zeros(4)
    for _ in range(5):
        g = rng.normal(size=(4,))
        u, s = opt.update(jnp.asarray(g), s, params)
        params = O.apply_updates(params, u)
        acc += g * g
        w = w - lr * g / np.sqrt(eps0 + acc)
    np.testing.assert_allclose(params, w, rtol=1e-13)


# ---------------------------------------------------------------- MLP(dropout_mode="chapter")
def test_mlp_dropout_in_the_chapters_form():
    model = nn.MLP([16, 2], dropout=0.5, dropout_mode="chapter")
    assert "Dropout(0.5, mode='chapter')" in model.name
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 3))
    x = jnp.ones((4, 3))
    hidden = nn.intermediates(model, params, state, x, train=False)
    np.testing.assert_allclose(hidden[3], 0.5 * hidden[2], rtol=1e-6)  # test time: scaled by keep = 0.5
    kept, _ = model.layers[2].apply({}, {}, jnp.ones((1000,)), key=jax.random.PRNGKey(1), train=True)
    assert set(np.unique(np.asarray(kept))) <= {0.0, 1.0}  # training: kept units unscaled
    with pytest.raises(ValueError, match="MLP dropout: Dropout: mode must be one of"):
        nn.MLP([4, 2], dropout=0.5, dropout_mode="sideways")
