"""Mixed precision: float32 params, bfloat16 compute, float32 outputs; accumulator dtypes (issue 15 item 5)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet import data as D
from jaxnet import nn
from jaxnet import optim as O
from jaxnet import train as T
from jaxnet.train.precision import Policy, get_policy, mixed_precision

LOSS = "softmax_cross_entropy_with_integer_labels"


def test_wrapper_computes_in_bfloat16_and_returns_float32():
    model = nn.MLP([16, 3], batchnorm=True)
    wrapped = mixed_precision(model, "bf16")
    _, params, state = wrapped.init(jax.random.PRNGKey(0), (-1, 5))
    assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(params))
    x = jax.random.normal(jax.random.PRNGKey(1), (8, 5))
    y, new_state = wrapped.apply(params, state, x, train=True)
    to16 = lambda t: jax.tree_util.tree_map(lambda a: a.astype(jnp.bfloat16), t)  # noqa: E731
    ref, ref_state = model.apply(to16(params), to16(state), x.astype(jnp.bfloat16), train=True)
    assert y.dtype == jnp.float32 and ref.dtype == jnp.bfloat16  # the model really ran in bfloat16
    np.testing.assert_array_equal(np.asarray(y), np.asarray(ref.astype(jnp.float32)))
    assert all(s.dtype == jnp.float32 for s in jax.tree_util.tree_leaves(new_state))
    chex.assert_trees_all_close(new_state, jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), ref_state))
    grads = jax.grad(lambda p: wrapped.apply(p, state, x, train=True)[0].sum())(params)
    assert all(g.dtype == jnp.float32 for g in jax.tree_util.tree_leaves(grads))


def test_policy_names_and_errors():
    assert get_policy("bf16") == Policy(jnp.float32, jnp.bfloat16, jnp.float32)
    assert get_policy("f16").compute_dtype == jnp.float16
    with pytest.raises(ValueError, match=r"precision must be one of .* got .bf17."):
        get_policy("bf17")
    with pytest.raises(TypeError, match="precision must be a name such as 'bf16' or a Policy, got 16"):
        get_policy(16)
    with pytest.raises(TypeError, match="mixed_precision: model must be a Layer, got str"):
        mixed_precision("mlp", "bf16")


@pytest.mark.parametrize("make", [lambda **k: O.adam(1e-3, **k), lambda **k: O.rmsprop(1e-3, alpha=0.999, **k)])
def test_float32_accumulators_decay_where_bfloat16_ones_cannot(make):
    """``1 - b2`` is fine, but ``b2 * nu`` in bfloat16 rounds ``nu`` back up: nu never decays."""
    params = {"w": jnp.zeros(4, jnp.bfloat16)}
    g1, g0 = {"w": jnp.full(4, 1.0, jnp.bfloat16)}, {"w": jnp.zeros(4, jnp.bfloat16)}
    results = {}
    for acc in (None, jnp.float32):
        opt = make(accumulator_dtype=acc)
        s, update = opt.init(params), jax.jit(opt.update)
        u, s = update(g1, s, params)
        assert u["w"].dtype == jnp.bfloat16
        for _ in range(100):
            u, s = update(g0, s, params)
        results[acc] = float(s.nu["w"][0]), s.nu["w"].dtype
    expected = 1e-3 * 0.999**100  # float64: (1 - b2) g^2 then 100 decays by b2
    assert results[jnp.float32][1] == jnp.float32
    assert results[jnp.float32][0] == pytest.approx(expected, rel=1e-4)
    assert results[None][1] == jnp.bfloat16 and results[None][0] > 0.96e-3  # stuck: 0.999 nu rounds to nu


def test_accumulator_dtype_errors():
    with pytest.raises(TypeError, match=r"adam: accumulator_dtype must be a float dtype .*, got int32"):
        O.adam(1e-3, accumulator_dtype=jnp.int32)
    with pytest.raises(TypeError, match="adagrad: accumulator_dtype must be a float dtype"):
        O.adagrad(1e-3, accumulator_dtype="bogus")


@pytest.mark.slow
def test_bfloat16_training_reaches_float32_accuracy_on_digits():
    x, y = D.load_digits()
    (xt, yt), (xv, yv) = D.train_test_split(jax.random.PRNGKey(0), x, y, test=0.25, stratify=True)
    model = nn.MLP([64, 10])
    kw = dict(epochs=12, batch_size=64, key=jax.random.PRNGKey(1), progress=False)
    acc = {}
    for precision in (None, "bf16"):
        r = T.fit(model, LOSS, O.adam(3e-3), (xt, yt), precision=precision, **kw)
        assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(r.params))
        acc[precision] = T.evaluate(model, LOSS, r.params, r.state, (xv, yv), metrics={"accuracy": nn.losses.accuracy})[
            "accuracy"
        ]
    assert acc[None] > 0.93
    assert abs(acc["bf16"] - acc[None]) <= 0.02, acc  # the stated margin: 2 points of test accuracy


def test_cli_precision_flag_trains_in_bfloat16(tmp_path, capsys):
    from jaxnet import cli

    out = tmp_path / "run"
    args = ["train", "--data", "xor", "--hidden", "4", "--epochs", "2", "--batch-size", "4", "--precision", "bf16"]
    assert cli.main([*args, "--no-plot", "--quiet", "--out", str(out)]) == 0
    assert "test accuracy" in capsys.readouterr().out
    meta, arrays = T.read_checkpoint(out / "checkpoint.npz")
    assert meta["config"]["cli"]["precision"] == "bf16"
    assert all(a.dtype == np.float32 for k, a in arrays.items() if k.startswith("params/"))
