"""The compiled SGD step, trace counting, and a light `import jaxnet`."""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet as jn
from jaxnet.nn import losses


def _setup():
    model = jn.MLP([8, 3], "tanh")
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 4))
    x = jax.random.normal(jax.random.PRNGKey(1), (16, 4))
    y = jax.random.randint(jax.random.PRNGKey(2), (16,), 0, 3)
    return model, params, state, x, y


def test_sgd_step_equals_manual_gradient_descent(x64):
    model, params, state, x, y = _setup()
    params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), params)
    x = x.astype(jnp.float64)
    loss = losses.softmax_cross_entropy_with_integer_labels
    opt = jn.sgd(0.25)  # exactly representable, whatever dtype the state uses
    step = jn.make_train_step(model, loss, opt, metrics={"accuracy": losses.accuracy})

    # the step donates params/state/opt_state: pass copies, the originals are reused below
    def copy(t):
        return jax.tree_util.tree_map(jnp.copy, t)

    new_params, _, opt_state, m = step(copy(params), state, opt.init(copy(params)), (x, y), jax.random.PRNGKey(3))

    def objective(p):
        return loss(model.apply(p, state, x, train=True)[0], y)

    grads = jax.grad(objective)(params)
    expected = jax.tree_util.tree_map(lambda p, g: p - 0.25 * g, params, grads)
    for a, b in zip(jax.tree_util.tree_leaves(new_params), jax.tree_util.tree_leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-13, atol=1e-15)
    assert float(m["loss"]) == pytest.approx(float(objective(params)), rel=1e-13)
    assert set(m) == {"loss", "accuracy"} and int(opt_state.count) == 1


def test_step_compiles_once_and_learning_rate_change_does_not_recompile():
    model, params, state, x, y = _setup()
    traces = []

    def counted_loss(out, y, where=None):
        traces.append(1)
        return losses.softmax_cross_entropy_with_integer_labels(out, y, where)

    opt = jn.sgd(0.1)
    step = jn.make_train_step(model, counted_loss, opt)
    opt_state = opt.init(params)
    for i in range(3):
        params, state, opt_state, _ = step(params, state, opt_state, (x, y), jax.random.PRNGKey(i))
    opt_state = jn.optim.set_hyperparameter(opt_state, "learning_rate", 0.01)
    params, state, opt_state, _ = step(params, state, opt_state, (x, y), jax.random.PRNGKey(9))
    assert len(traces) == 1


def test_penalty_is_added_to_the_loss():
    model, params, state, x, y = _setup()
    loss = losses.softmax_cross_entropy_with_integer_labels

    def pen(p):
        return 0.5 * sum(jnp.sum(leaf**2) for leaf in jax.tree_util.tree_leaves(p))

    step = jn.make_train_step(model, loss, jn.sgd(0.0), penalty=pen)

    def copy(t):
        return jax.tree_util.tree_map(jnp.copy, t)  # the step donates params (reused below)

    _, _, _, m = step(copy(params), state, jn.sgd(0.0).init(params), (x, y), jax.random.PRNGKey(0))
    base = loss(model.apply(params, state, x, train=True)[0], y)
    assert float(m["loss"]) == pytest.approx(float(base + pen(params)), rel=1e-6)


def test_eval_step_and_masked_batch():
    model, params, state, x, y = _setup()
    ev = jn.make_eval_step(model, losses.softmax_cross_entropy_with_integer_labels, metrics={"acc": losses.accuracy})
    where = jnp.arange(16) < 10
    m = ev(params, state, (x, y, where))
    m10 = ev(params, state, (x[:10], y[:10]))
    assert float(m["loss"]) == pytest.approx(float(m10["loss"]), rel=1e-6)
    assert float(m["acc"]) == pytest.approx(float(m10["acc"]))


def test_sgd_rejects_bad_learning_rates():
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="learning_rate must be a finite number >= 0"):
            jn.sgd(bad)
    with pytest.raises(TypeError, match="optimizer must be an Optimizer"):
        jn.make_train_step(jn.Dense(2), "squared_error", object())


def test_import_does_no_compilation_or_data_loading():
    code = textwrap.dedent("""
        import logging, io, sys
        import jax
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        logging.getLogger("jax").addHandler(handler)
        logging.getLogger("jax").setLevel(logging.DEBUG)
        jax.config.update("jax_log_compiles", True)
        import jaxnet
        before = stream.getvalue()
        jax.jit(lambda x: x + 1)(1.0)  # proves the logging would have caught a compilation
        after = stream.getvalue()
        heavy = [m for m in ("sklearn", "matplotlib", "tqdm", "optax", "flax", "torch") if m in sys.modules]
        print(repr(before.count("Finished tracing")), repr(after.count("Finished tracing") > 0), heavy)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "True", "[]"], out.stdout + out.stderr
