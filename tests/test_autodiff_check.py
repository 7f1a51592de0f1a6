"""check_grads: the public gradient check, its report and its errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet import nn
from jaxnet.autodiff import GradientMismatchError, check_grads, relative_error
from jaxnet.nn.core import make_layer


def _setup(model, in_dim=3, n=6, seed=0):
    key = jax.random.PRNGKey(seed)
    _, params, state = model.init(key, (-1, in_dim))
    params = jax.tree_util.tree_map(
        lambda a: jnp.asarray(a, jnp.float64) + 0.1 * jax.random.normal(key, jnp.shape(a), jnp.float64), params
    )
    x = jax.random.normal(key, (n, in_dim), jnp.float64)
    return params, state, x


def test_report_per_parameter_path(x64):
    model = nn.MLP([4, 2], activation="prelu")
    params, state, x = _setup(model)
    report = check_grads(
        model, params, state, x, jnp.arange(6) % 2, "softmax_cross_entropy_with_integer_labels", penalties=[("l2", 0.1)]
    )
    assert set(report) == {"dense_0/w", "dense_0/b", "prelu_1/alpha", "dense_2/w", "dense_2/b"}
    for path, err in report.items():
        assert err.handwritten <= 1e-12, path
        assert err.finite_differences <= 1e-6, path


def test_float32_defaults_pass():
    model = nn.MLP([5, 3], activation="tanh")
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 4))
    x = jax.random.normal(jax.random.PRNGKey(1), (8, 4))
    report = check_grads(model, params, state, x, jax.random.normal(jax.random.PRNGKey(2), (8, 3)), "squared_error")
    assert all(e.handwritten < 1e-3 and e.finite_differences < 5e-2 for e in report.values())


def _liar(fn):
    """A layer whose description says ReLU but which computes ``fn``: a bug check_grads must catch."""
    return make_layer(
        "Liar()",
        lambda k, s: (s, {}, {}),
        lambda p, s, x, *, key, train: (fn(x), s),
        kind="activation",
        config={"fn": "relu"},
    )


def test_raises_naming_the_path_where_handwritten_and_jax_disagree(x64):
    model = nn.serial(nn.Dense(4), _liar(jnp.tanh), nn.Dense(2))
    params, state, x = _setup(model)
    y = jax.random.normal(jax.random.PRNGKey(3), (6, 2), jnp.float64)
    with pytest.raises(GradientMismatchError, match=r"handwritten backprop and jax.grad disagree at dense_0/b"):
        check_grads(model, params, state, x, y, "squared_error")
    report = check_grads(model, params, state, x, y, "squared_error", raise_on_error=False)
    assert report["dense_0/w"].handwritten > 1e-3
    assert report["dense_2/w"].handwritten <= 1e-12  # above the lie, the gradient is still right


def test_finite_differences_catch_a_wrong_jax_derivative(x64):
    @jax.custom_jvp
    def wrong_identity(x):
        return x

    wrong_identity.defjvp(lambda primals, tangents: (primals[0], 2.0 * tangents[0]))
    layer = make_layer(
        "Odd()",
        lambda k, s: (s, {}, {}),
        lambda p, s, x, *, key, train: (wrong_identity(x), s),
        kind="activation",
        config={"fn": "identity"},
    )
    model = nn.serial(nn.Dense(3), layer, nn.Dense(1))
    params, state, x = _setup(model)
    report = check_grads(
        model, params, state, x, jnp.zeros((6, 1)), "squared_error", raise_on_error=False, fd_entries=None
    )
    # jax.grad is off by a factor 2 below the odd layer; the handwritten and finite differences both disagree with it
    assert report["dense_0/w"].handwritten == pytest.approx(0.5, rel=1e-6)
    assert report["dense_0/w"].finite_differences == pytest.approx(0.5, rel=1e-4)
    assert report["dense_2/w"].finite_differences < 1e-6


def test_layer_without_rule_is_named_and_checked_by_finite_differences_only(x64):
    odd = make_layer("Mystery(3)", lambda k, s: (s, {}, {}), lambda p, s, x, *, key, train: (x, s), kind="mystery")
    model = nn.serial(nn.Dense(2), odd)
    params, state, x = _setup(model)
    with pytest.warns(
        UserWarning, match=r"no handwritten backprop for layer Mystery\(3\).*handwritten column is absent"
    ):
        report = check_grads(model, params, state, x, jnp.zeros((6, 2)), "squared_error")
    assert set(report) == {"dense_0/w", "dense_0/b"}
    assert all(np.isnan(e.handwritten) for e in report.values())
    assert all(e.finite_differences <= 1e-6 for e in report.values())


def test_layer_without_rule_still_catches_a_wrong_jax_derivative(x64):
    @jax.custom_jvp
    def doubled(x):
        return x

    doubled.defjvp(lambda primals, tangents: (primals[0], 2.0 * tangents[0]))
    odd = make_layer("Odd()", lambda k, s: (s, {}, {}), lambda p, s, x, *, key, train: (doubled(x), s), kind="odd")
    model = nn.serial(nn.Dense(2), odd)
    params, state, x = _setup(model)
    with (
        pytest.warns(UserWarning, match="handwritten column is absent"),
        pytest.raises(GradientMismatchError, match=r"finite differences and jax\.grad disagree at dense_0"),
    ):
        check_grads(model, params, state, x, jnp.ones((6, 2)), "squared_error")


def test_finite_difference_sampling_and_skipping(x64):
    model = nn.MLP([7, 2], activation="sigmoid")
    params, state, x = _setup(model)
    y = jnp.zeros((6, 2))
    skipped = check_grads(model, params, state, x, y, "squared_error", fd_entries=0)
    assert all(np.isnan(e.finite_differences) for e in skipped.values())
    a = check_grads(model, params, state, x, y, "squared_error", fd_entries=3, fd_key=jax.random.PRNGKey(1))
    b = check_grads(model, params, state, x, y, "squared_error", fd_entries=3, fd_key=jax.random.PRNGKey(1))
    assert a == b  # the same key checks the same entries


def test_relative_error_definition():
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error([1.0, 2.0], [1.0, 2.5]) == pytest.approx(0.5 / 2.5)
    assert relative_error([1e-20], [2e-20], floor=1.0) == pytest.approx(1e-20)
