"""Issue 13, item 1: padding and zero weights reach BatchNorm (and every mask-using layer),
in steps, epochs, fit, ensembles, validation and the handwritten backprop; epoch metrics
average over real samples."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxnet as jn
from jaxnet.autodiff.backprop import backprop
from jaxnet.data.batching import shuffle_batches
from jaxnet.nn.core import make_layer
from jaxnet.train import epoch as E
from jaxnet.train.epoch import make_train_epoch
from jaxnet.train.fit import pad_batches
from jaxnet.train.step import train_step_fn

KEY = jax.random.PRNGKey(0)
X5 = jnp.array([[0.0], [10.0], [20.0], [30.0], [40.0]])


def test_batchnorm_running_stats_come_from_the_real_rows_of_a_padded_epoch():
    model = jn.serial(jn.BatchNorm(momentum=1.0))
    _, p, s = model.init(KEY, (-1, 1))
    opt = jn.sgd(0.0)
    epoch = make_train_epoch(model, "squared_error", opt, batch_size=3, n=5, drop_last=False)
    key = jax.random.PRNGKey(1)
    _, s2, _, _ = epoch(p, s, opt.init(p), (X5, jnp.zeros((5, 1))), key)
    # the last step's batch holds two real samples (epoch scheme: k_shuffle = split(key)[0])
    idx, mask = shuffle_batches(jax.random.split(key)[0], 5, 3, drop_last=False)
    real = np.asarray(X5)[np.asarray(idx[-1])[np.asarray(mask[-1])], 0]
    assert real.shape == (2,)
    np.testing.assert_allclose(float(s2["batchnorm_0"]["mean"][0]), real.mean(), rtol=1e-6)
    np.testing.assert_allclose(float(s2["batchnorm_0"]["var"][0]), real.var(ddof=1), rtol=1e-6)


def test_fit_with_drop_last_false_keeps_padding_out_of_batchnorm():
    model = jn.serial(jn.BatchNorm(momentum=1.0))
    r = jn.fit(
        model, "squared_error", jn.sgd(0.0), (X5, jnp.zeros((5, 1))), epochs=1, batch_size=3, key=KEY,
        drop_last=False, progress=False,
    )  # fmt: skip
    mean, var = float(r.state["batchnorm_0"]["mean"][0]), float(r.state["batchnorm_0"]["var"][0])
    # the last batch holds two real samples a, b: mean (a + b)/2, unbiased variance (a - b)^2/2
    pairs = [((a + b) / 2, (a - b) ** 2 / 2) for a, b in itertools.combinations([0, 10, 20, 30, 40], 2)]
    assert any(abs(mean - m) < 1e-4 and abs(var - v) < 1e-2 for m, v in pairs), (mean, var)


def test_ensemble_member_weights_reach_batchnorm():
    x = jnp.array([[0.0], [0.0], [0.0], [100.0]])
    r = jn.fit_ensemble(
        jn.serial(jn.BatchNorm(momentum=1.0)), "squared_error", jn.sgd(0.0), (x, jnp.zeros((4, 1))),
        members=1, epochs=1, batch_size=4, key=KEY, subsets=jnp.array([[1.0, 1.0, 1.0, 0.0]]), progress=False,
    )  # fmt: skip
    assert float(r.state["batchnorm_0"]["mean"][0, 0]) == 0.0
    assert float(r.state["batchnorm_0"]["var"][0, 0]) == 0.0


def _mean_centering_probe():
    """A stateless mask-using layer: ``y = x - mean of the real rows`` (in training and evaluation)."""

    def init(key, input_shape):
        return input_shape, {}, {}

    def apply(params, state, x, *, key, train, mask=None):
        w = jnp.ones(x.shape[:1]) if mask is None else jnp.asarray(mask, x.dtype)
        mu = jnp.sum(w[:, None] * x, axis=0) / jnp.sum(w)
        return x - mu, state

    return make_layer("Probe()", init, apply, kind="probe", uses_mask=True)


def test_validation_and_evaluate_pass_the_padding_mask():
    x = jnp.arange(7.0)[:, None]
    y = jnp.zeros((7, 1))
    model = _mean_centering_probe()
    # batches of 4: rows 0..3, then rows 4..6 and one padded row; each centred on its real rows
    per = np.concatenate([np.arange(4.0) - 1.5, np.arange(4.0, 7.0) - 5.0]) ** 2
    got = jn.evaluate(model, "squared_error", {}, {}, (x, y), batch_size=4)
    assert got["loss"] == pytest.approx(per.mean())
    cfg = E.make_config(model, "squared_error", None, n=7, batch_size=1)
    padded = E.evaluate_batched(cfg, {}, {}, *pad_batches(x, y, 4))
    assert float(padded["loss"]) == pytest.approx(per.mean())


def test_epoch_metrics_average_over_real_samples():
    # losses 0..4 per sample; batches of 4: a full step and a step of one real sample.
    x = jnp.arange(5.0)[:, None]
    y = jnp.zeros((5, 1))
    model = jn.serial(jn.Dense(1, w_init="ones", use_bias=False))
    _, p, s = model.init(KEY, (-1, 1))
    opt = jn.sgd(0.0)
    epoch = make_train_epoch(model, "squared_error", opt, batch_size=4, n=5, drop_last=False)
    _, _, _, m = epoch(p, s, opt.init(p), (x, y), KEY)
    assert float(m["loss"]) == pytest.approx(np.mean(np.arange(5.0) ** 2), rel=1e-6)


def test_handwritten_backprop_takes_the_mask(x64, rng):
    model = jn.serial(jn.Dense(3), jn.BatchNorm(), jn.Tanh(), jn.Dense(2))
    _, p, s = model.init(KEY, (-1, 4))
    x, y = jnp.asarray(rng.normal(size=(6, 4))), jnp.asarray(rng.normal(size=(6, 2)))
    mask = jnp.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])

    def f(params):
        out, _ = model.apply(params, s, x, train=True, mask=mask)
        return jn.nn.losses.squared_error(out, y, mask)

    v_ref, g_ref = jax.value_and_grad(f)(p)
    v, g = backprop(model, p, s, x, y, "squared_error", where=mask, mask=mask)
    assert float(v) == pytest.approx(float(v_ref), rel=1e-12)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12), g, g_ref)


def test_weighted_batchnorm_correction_is_kish_and_scale_invariant():
    bn = jn.BatchNorm(momentum=1.0)
    _, p, s = bn.init(KEY, (-1, 1))
    x = jnp.array([[1.0], [2.0], [4.0], [7.0]])
    w = np.array([1.0, 2.0, 0.5, 1.5])
    xs = np.asarray(x)[:, 0]
    mu = (w * xs).sum() / w.sum()
    s2 = (w * (xs - mu) ** 2).sum() / w.sum()
    var = s2 * w.sum() ** 2 / (w.sum() ** 2 - (w**2).sum())
    for scale in (1.0, 10.0):
        _, st_ = bn.apply(p, s, x, train=True, mask=jnp.asarray(w * scale))
        assert float(st_["mean"][0]) == pytest.approx(mu, rel=1e-6)
        assert float(st_["var"][0]) == pytest.approx(var, rel=1e-6)


def test_batchnorm_with_no_real_row_keeps_its_running_statistics():
    bn = jn.BatchNorm(momentum=0.5)
    _, p, s = bn.init(KEY, (-1, 2))
    _, st_ = bn.apply(p, s, jnp.full((3, 2), jnp.nan), train=True, mask=jnp.zeros(3))
    np.testing.assert_array_equal(np.asarray(st_["mean"]), [0.0, 0.0])
    np.testing.assert_array_equal(np.asarray(st_["var"]), [1.0, 1.0])


# --- the property: a masked batch trains exactly as the batch without the masked rows ---------

MODEL = jn.serial(jn.Dense(3), jn.BatchNorm(momentum=0.3), jn.Relu(), jn.Dense(2))


@settings(max_examples=10, deadline=None)
@given(
    n=st.integers(3, 8),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_masked_batch_equals_batch_without_masked_rows(n, seed, data):
    keep = data.draw(st.lists(st.booleans(), min_size=n, max_size=n).filter(lambda m: sum(m) >= 2))
    keep = np.array(keep)
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        rng = np.random.default_rng(seed)
        _, p, s = MODEL.init(jax.random.PRNGKey(seed), (-1, 4))
        p = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), p)
        s = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), s)
        x, y = rng.normal(size=(n, 4)), rng.normal(size=(n, 2))
        x[~keep] = rng.normal(size=((~keep).sum(), 4)) * 1e3  # padded rows hold anything
        opt = jn.sgd(0.1, momentum=0.9)
        step = train_step_fn(MODEL, "squared_error", opt)
        full = step(p, s, opt.init(p), (jnp.asarray(x), jnp.asarray(y), jnp.asarray(keep, jnp.float64)), None)
        kept = step(p, s, opt.init(p), (jnp.asarray(x[keep]), jnp.asarray(y[keep])), None)
        close = lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)  # noqa: E731
        close(full[3]["loss"], kept[3]["loss"])
        jax.tree_util.tree_map(close, full[0], kept[0])  # params after the step: the gradients agree
        jax.tree_util.tree_map(close, full[1], kept[1])  # BatchNorm's running statistics
        jax.tree_util.tree_map(close, full[2].trace, kept[2].trace)  # the momentum buffers: the grads themselves
    finally:
        jax.config.update("jax_enable_x64", previous)
