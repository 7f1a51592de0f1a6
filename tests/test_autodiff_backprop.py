"""Handwritten backprop: every layer kind, loss, penalty and kink against jax.grad (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet import nn
from jaxnet.autodiff import backprop, check_supported, loss_gradient
from jaxnet.autodiff import penalties as P
from jaxnet.autodiff.check import relative_error
from jaxnet.nn import losses as L
from jaxnet.nn.core import make_layer

TOL = 1e-12


def _f64_params(params, key, noise=0.1):
    """Float64 params, shifted off their initial values (zero biases sit on ReLU kinks)."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, max(len(leaves), 1))
    return jax.tree_util.tree_unflatten(
        treedef,
        [
            jnp.asarray(leaf, jnp.float64) + noise * jax.random.normal(k, jnp.shape(leaf), jnp.float64)
            for leaf, k in zip(leaves, keys, strict=True)
        ],
    )


def _jax_objective(model, state, x, y, loss, where=None, penalties=(), key=None, train=True):
    specs = P.parse_penalties(penalties)

    def objective(p):
        out, _ = model.apply(p, state, x, key=key, train=train)
        return L.get_loss(loss)(out, y, where) + (P.penalties_value(p, specs) if specs else 0.0)

    return objective


# Compile time dominates these small tests; both sides compile the same way, so cheap XLA options are fair.
FAST_COMPILE = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
    "xla_cpu_use_fusion_emitters": False,
}


def _assert_agree(model, params, state, x, y, loss, tol=TOL, **kw):
    return _assert_agree_many(model, params, state, x, [(y, loss, kw)], tol)[0]


def _assert_agree_many(model, params, state, x, cases, tol=TOL):
    """Handwritten vs jax.grad for several (y, loss, kwargs) cases, compiled as one program."""
    objectives = [_jax_objective(model, state, x, y, loss, **kw) for y, loss, kw in cases]

    def both(p):
        return [
            (backprop(model, p, state, x, y, loss, **kw), jax.value_and_grad(obj)(p))
            for (y, loss, kw), obj in zip(cases, objectives, strict=True)
        ]

    results = jax.jit(both).lower(params).compile(compiler_options=FAST_COMPILE)(params)
    out = []
    for (value, grads), (want_value, want) in results:
        np.testing.assert_allclose(value, want_value, rtol=1e-13)
        flat_got = jax.tree_util.tree_leaves_with_path(grads)
        flat_want = jax.tree_util.tree_leaves_with_path(want)
        assert [p for p, _ in flat_got] == [p for p, _ in flat_want]
        # a gradient that is exactly zero in exact arithmetic (a bias before BatchNorm) is round-off on both
        # sides: judge it against the model's largest gradient rather than its own scale
        floor = 1e-4 * max(float(jnp.max(jnp.abs(w))) for _, w in flat_want)
        for (path, g), (_, w) in zip(flat_got, flat_want, strict=True):
            assert g.shape == w.shape and g.dtype == w.dtype, path
            err = relative_error(g, w, floor)
            assert err <= tol, (jax.tree_util.keystr(path), err)
        out.append(grads)
    return out


def test_every_activation_layer(x64):
    """One deep model with every activation (Step has its own test: no gradient passes it)."""
    key = jax.random.PRNGKey(1)
    acts = [
        nn.Sigmoid(),
        nn.Tanh(),
        nn.Relu(),
        nn.LeakyRelu(0.2),
        nn.PRelu(),
        nn.Elu(),
        nn.Identity(),
        nn.Elu(0.8, learnable=True),
        nn.LeakyRelu(),
    ]
    layers = []
    for act in acts:
        layers += [nn.Dense(5), act]
    model = nn.serial(*layers, nn.Dense(3))
    _, params, state = model.init(key, (-1, 4))
    params = _f64_params(params, key, noise=0.3)
    x = jax.random.normal(key, (9, 4), jnp.float64)
    y = jax.random.normal(jax.random.PRNGKey(2), (9, 3), jnp.float64)
    grads = _assert_agree(model, params, state, x, y, "squared_error")
    assert float(jnp.max(jnp.abs(grads["dense_0"]["w"]))) > 1e-6  # the gradient reaches the first layer


@pytest.mark.parametrize("head", ["softmax", "log_softmax"])
def test_softmax_heads(x64, head):
    key = jax.random.PRNGKey(3)
    model = nn.MLP([5, 4], activation="tanh", output_activation=head)
    _, params, state = model.init(key, (-1, 3))
    params = _f64_params(params, key)
    x = jax.random.normal(key, (6, 3), jnp.float64)
    y = jax.random.normal(jax.random.PRNGKey(4), (6, 4), jnp.float64)
    _assert_agree(model, params, state, x, y, "mean_squared_error")


def _loss_case(name, key, n=8, k=3):
    if name in ("binary_cross_entropy", "binary_cross_entropy_with_logits"):
        head = "sigmoid" if name == "binary_cross_entropy" else None
        return nn.MLP([5, 1], activation="tanh", output_activation=head), (jnp.arange(n) % 2).astype(jnp.float64)
    if name == "softmax_cross_entropy":
        return nn.MLP([5, k], activation="tanh"), jax.nn.softmax(jax.random.normal(key, (n, k), jnp.float64))
    if name == "softmax_cross_entropy_with_integer_labels":
        return nn.MLP([5, k], activation="tanh"), jnp.arange(n) % k
    return nn.MLP([5, k], activation="tanh"), jax.random.normal(key, (n, k), jnp.float64)


@pytest.mark.parametrize("loss", sorted(L.LOSSES))
def test_every_loss_with_and_without_where(x64, loss):
    key = jax.random.PRNGKey(5)
    model, y = _loss_case(loss, key)
    _, params, state = model.init(key, (-1, 4))
    params = _f64_params(params, key)
    x = jax.random.normal(key, (8, 4), jnp.float64)
    where = jnp.array([1.0, 0.0, 2.0, 1.0, 0.5, 1.0, 0.0, 3.0])
    # the loss may be given by name or as the function itself
    _assert_agree_many(model, params, state, x, [(y, loss, {}), (y, L.LOSSES[loss], {"where": where})])


def test_binary_targets_of_shape_batch_and_soft_targets(x64):
    key = jax.random.PRNGKey(6)
    model = nn.MLP([3, 1], activation="tanh")
    _, params, state = model.init(key, (-1, 2))
    params = _f64_params(params, key)
    x = jax.random.normal(key, (5, 2), jnp.float64)
    soft = jax.random.uniform(key, (5,), jnp.float64)
    _assert_agree(model, params, state, x, soft, "binary_cross_entropy_with_logits")


def test_flatten_leading_axes_nested_serial_and_dense_without_bias(x64):
    key = jax.random.PRNGKey(7)
    inner = nn.serial(nn.Dense(4, use_bias=False), nn.Tanh())
    model = nn.serial(nn.Dense(3), nn.Sigmoid(), nn.Flatten(), inner, nn.Dense(2))
    _, params, state = model.init(key, (-1, 5, 2))
    params = _f64_params(params, key)
    x = jax.random.normal(key, (4, 5, 2), jnp.float64)  # Dense acts on the last axis of [4, 5, 2]
    y = jax.random.normal(key, (4, 2), jnp.float64)
    grads = _assert_agree(model, params, state, x, y, "squared_error")
    assert set(grads["serial_3"]["dense_0"]) == {"w"}


def test_chapter_formula_for_the_output_neuron(x64):
    """The chapter's dL/dw(o) = mean_k a(o-1) sigma'(z(o)) 2 (a(o) - y) on its 1-1-1-1 network."""
    key = jax.random.PRNGKey(8)
    model = nn.serial(nn.Dense(1), nn.Sigmoid(), nn.Dense(1), nn.Sigmoid(), nn.Dense(1), nn.Sigmoid())
    _, params, state = model.init(key, (-1, 1))
    params = _f64_params(params, key, noise=0.5)
    x = jax.random.normal(key, (10, 1), jnp.float64)
    y = jax.random.uniform(jax.random.PRNGKey(9), (10, 1), jnp.float64)
    _, grads = backprop(model, params, state, x, y, "squared_error")
    a = nn.intermediates(model, params, state, x, train=False)
    a_prev, z_o, a_o = a[4], a[5], a[6]
    sig_prime = jax.nn.sigmoid(z_o) * (1 - jax.nn.sigmoid(z_o))
    delta = sig_prime * 2 * (a_o - y)
    np.testing.assert_allclose(grads["dense_4"]["w"], jnp.mean(a_prev * delta, axis=0, keepdims=True), rtol=1e-13)
    np.testing.assert_allclose(grads["dense_4"]["b"], jnp.mean(delta, axis=0), rtol=1e-13)
    # one layer down: dL/da(o-1) = w(o) sigma'(z(o)) 2 (a(o) - y)
    z_prev = a[3]
    d_prev = delta * params["dense_4"]["w"][0, 0] * jax.nn.sigmoid(z_prev) * (1 - jax.nn.sigmoid(z_prev))
    np.testing.assert_allclose(grads["dense_2"]["w"], jnp.mean(a[2] * d_prev, axis=0, keepdims=True), rtol=1e-12)


def test_penalties_l1_l2_with_masks(x64):
    key = jax.random.PRNGKey(10)
    model = nn.MLP([4, 2], activation="relu")
    _, params, state = model.init(key, (-1, 3))
    params = _f64_params(params, key)
    x = jax.random.normal(key, (5, 3), jnp.float64)
    y = jax.random.normal(key, (5, 2), jnp.float64)
    only_w = {"dense_0": {"w": True, "b": False}, "relu_1": {}, "dense_2": {"w": True, "b": False}}
    pens = [("l2", 0.3, only_w), ("l1", 0.05), ("l1", 0.2, {"dense_0": False, "relu_1": False, "dense_2": True})]
    _assert_agree(model, params, state, x, y, "squared_error", penalties=pens)
    callable_mask = [("l2", 0.7, lambda p: jax.tree_util.tree_map(lambda a: a.ndim == 2, p))]
    grads = _assert_agree(model, params, state, x, y, "squared_error", penalties=callable_mask)
    _, plain = backprop(model, params, state, x, y, "squared_error")
    np.testing.assert_allclose(grads["dense_0"]["w"] - plain["dense_0"]["w"], 0.7 * params["dense_0"]["w"], rtol=1e-12)
    np.testing.assert_allclose(grads["dense_0"]["b"], plain["dense_0"]["b"], rtol=1e-13)


def test_penalties_match_the_optimizers_regularizers(x64):
    from jaxnet import optim

    key = jax.random.PRNGKey(11)
    w = jax.random.normal(key, (3, 2), jnp.float64).at[0, 0].set(0.0)  # one weight on L1's kink
    params = {"a": {"w": w, "b": jax.random.normal(key, (2,), jnp.float64)}, "c": jax.random.normal(key, (4,))}
    for mask in (None, optim.weights_only, {"a": {"w": True, "b": False}, "c": True}):
        for kind, fn in (("l2", optim.l2_penalty), ("l1", optim.l1_penalty)):
            leaves = [np.asarray(a) for a in jax.tree_util.tree_leaves(params)]
            # leaves in order a/b, a/w, c
            chosen = leaves if mask is None else leaves[1:2] if mask is optim.weights_only else leaves[1:]
            ref = (
                0.15 * sum(np.sum(a * a) for a in chosen)
                if kind == "l2"
                else 0.3 * sum(np.abs(a).sum() for a in chosen)
            )
            np.testing.assert_allclose(P.penalty_value(params, kind, 0.3, mask), ref, rtol=1e-14)
            want = jax.grad(lambda p, fn=fn, mask=mask: fn(p, 0.3, mask))(params)
            got = P.penalty_gradient(params, kind, 0.3, mask)
            for g, v in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
                np.testing.assert_allclose(g, v, rtol=1e-14)
    # the same masks through the handwritten backprop
    model = nn.MLP([3, 2])
    _, p, state = model.init(key, (-1, 2))
    p = _f64_params(p, key)
    x = jax.random.normal(key, (4, 2), jnp.float64)
    _, grads = backprop(
        model, p, state, x, jnp.zeros((4, 2)), "squared_error", penalties=[("l1", 0.1, optim.weights_only)]
    )
    want = jax.grad(
        lambda q: (
            L.squared_error(model.apply(q, state, x, train=True)[0], jnp.zeros((4, 2)))
            + optim.l1_penalty(q, 0.1, optim.weights_only)
        )
    )(p)
    for g, v in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(want), strict=True):
        np.testing.assert_allclose(g, v, rtol=1e-12)


def test_penalty_arguments_are_checked():
    with pytest.raises(ValueError, match="kind must be one of"):
        P.parse_penalties([("l3", 0.1)])
    with pytest.raises(ValueError, match="needs lam >= 0"):
        P.parse_penalties([("l2", -1.0)])
    with pytest.raises(TypeError, match="sequence of tuples"):
        P.parse_penalties(("l2", 0.1))
    with pytest.raises(TypeError, match=r"penalty 0 must be \(kind, lam\)"):
        P.parse_penalties(["l2"])
    with pytest.raises(TypeError, match="mask leaves must be bools"):
        P.penalty_value({"a": jnp.ones(2)}, "l2", 1.0, mask={"a": 1})
    with pytest.raises(ValueError, match="mask does not match"):
        P.penalty_value({"a": jnp.ones(2)}, "l2", 1.0, mask={"b": True})


# --- subgradients: the value chosen at each kink ----------------------------------------------


def test_subgradient_relu_at_zero_is_zero(x64):
    relu_net = nn.serial(nn.Dense(2), nn.Relu())
    params = {"dense_0": {"w": jnp.array([[1.0, 1.0]]), "b": jnp.array([0.0, 0.0])}, "relu_1": {}}
    x = jnp.array([[0.0], [1.0]])  # sample 0 lands exactly on the kink z = 0
    y = jnp.zeros((2, 2))
    _, grads = backprop(relu_net, params, {"dense_0": {}, "relu_1": {}}, x, y - 1.0, "squared_error")
    # only sample 1 passes gradient: d/db = mean over samples of 1{z>0} 2 (a - y)
    np.testing.assert_allclose(grads["dense_0"]["b"], [2.0, 2.0])  # (2 * (1 + 1)) / 2 samples


def test_subgradient_l1_at_zero_is_zero(x64):
    params = {"w": jnp.array([-2.0, 0.0, 3.0])}
    np.testing.assert_array_equal(P.penalty_gradient(params, "l1", 0.5)["w"], [-0.5, 0.0, 0.5])
    # and jax.grad of the value agrees, kink included
    np.testing.assert_array_equal(jax.grad(lambda p: P.penalty_value(p, "l1", 0.5))(params)["w"], [-0.5, 0.0, 0.5])


def test_subgradient_step_passes_no_gradient(x64):
    model = nn.serial(nn.Dense(2), nn.Step(), nn.Dense(1))
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 2))
    params = _f64_params(params, jax.random.PRNGKey(1))
    x = jnp.ones((3, 2))
    _, grads = backprop(model, params, state, x, jnp.zeros((3, 1)), "squared_error")
    np.testing.assert_array_equal(grads["dense_0"]["w"], 0.0)
    assert np.any(grads["dense_2"]["w"] != 0)


def test_subgradient_bce_clip_bound_is_half(x64):
    p = jnp.array([[1.0], [0.25]])
    y = jnp.array([1.0, 0.0])
    g = loss_gradient("binary_cross_entropy", p, y)
    # -(1/p) / n at p = 1, halved by the clip's midpoint subgradient; 1/(1-p) / n elsewhere
    np.testing.assert_allclose(g[:, 0], [-0.5 / 2, (1 / 0.75) / 2])
    np.testing.assert_allclose(g, jax.grad(L.binary_cross_entropy)(p, y))


def test_bce_with_logits_at_zero_gives_the_true_derivative(x64):
    z = jnp.zeros((4, 1))
    y = jnp.array([0.0, 1.0, 0.0, 1.0])
    g = loss_gradient("binary_cross_entropy_with_logits", z, y)
    h = 1e-6
    fd = (
        jax.vmap(lambda i: L.binary_cross_entropy_with_logits(z.at[i, 0].add(h), y))(jnp.arange(4))
        - jax.vmap(lambda i: L.binary_cross_entropy_with_logits(z.at[i, 0].add(-h), y))(jnp.arange(4))
    ) / (2 * h)
    np.testing.assert_allclose(g[:, 0], (0.5 - y) / 4)
    np.testing.assert_allclose(g[:, 0], fd, atol=1e-9)


# --- errors, jit, no autodiff inside -------------------------------------------------------


def test_unknown_layer_kind_is_named():
    odd = make_layer("Odd()", lambda k, s: (s, {}, {}), lambda p, s, x, *, key, train: (x, s), kind="odd")
    model = nn.serial(nn.Dense(2), odd)
    with pytest.raises(ValueError, match=r"no handwritten backprop for layer Odd\(\) \(kind 'odd'\) at model/odd_1"):
        check_supported(model)
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 3))
    with pytest.raises(ValueError, match=r"Odd\(\)"):
        backprop(model, params, state, jnp.ones((2, 3)), jnp.ones((2, 2)), "squared_error")


def test_unknown_loss_is_named():
    model = nn.Dense(2)
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 3))
    with pytest.raises(ValueError, match="no handwritten gradient for loss 'hinge'"):
        backprop(model, params, state, jnp.ones((2, 3)), jnp.ones((2, 2)), "hinge")
    with pytest.raises(ValueError, match="no handwritten gradient for loss '<lambda>'"):
        backprop(model, params, state, jnp.ones((2, 3)), jnp.ones((2, 2)), lambda a, b, w=None: jnp.sum(a))


def test_no_automatic_differentiation_inside(monkeypatch):
    model = nn.MLP([4, 2], activation="prelu")
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 3))

    def forbidden(*a, **k):
        raise AssertionError("autodiff used inside the handwritten backprop")

    for name in ("grad", "vjp", "value_and_grad", "jvp", "linearize"):
        monkeypatch.setattr(jax, name, forbidden)
    _, grads = backprop(
        model,
        params,
        state,
        jnp.ones((3, 3)),
        jnp.array([0, 1, 1]),
        "softmax_cross_entropy_with_integer_labels",
        penalties=[("l2", 0.1)],
    )
    assert jax.tree_util.tree_structure(grads) == jax.tree_util.tree_structure(params)


def test_jit_compiles_once_and_keeps_float32():
    model = nn.MLP([8, 3])
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 4))
    traces = []

    @jax.jit
    def step(p, x, y):
        traces.append(1)
        return backprop(model, p, state, x, y, "softmax_cross_entropy_with_integer_labels")

    for i in range(3):
        x = jax.random.normal(jax.random.PRNGKey(i), (5, 4))
        value, grads = step(params, x, jnp.arange(5) % 3)
    assert len(traces) == 1
    assert value.dtype == jnp.float32
    assert all(g.dtype == jnp.float32 for g in jax.tree_util.tree_leaves(grads))


# --- BatchNorm and Dropout -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["inverted", "chapter"])
def test_gradients_of_a_batchnorm_dropout_mlp_agree_with_the_handwritten_backprop(x64, mode):
    key = jax.random.PRNGKey(12)
    model = nn.serial(
        nn.Dense(6),
        nn.BatchNorm(),
        nn.Relu(),
        nn.Dropout(0.3, mode=mode),
        nn.Dense(5),
        nn.BatchNorm(affine=False, eps=1e-3),
        nn.Tanh(),
        nn.Dropout(0.5, mode=mode),
        nn.Dense(3),
    )
    _, params, state = model.init(key, (-1, 4))
    params = _f64_params(params, key)
    x = jax.random.normal(key, (16, 4), jnp.float64)
    y = jnp.arange(16) % 3
    loss = "softmax_cross_entropy_with_integer_labels"
    # two keys (different units dropped, both sides follow the key) and evaluation mode (running statistics)
    first, other, _ = _assert_agree_many(
        model,
        params,
        state,
        x,
        [
            (y, loss, {"key": jax.random.PRNGKey(99), "train": True}),
            (y, loss, {"key": jax.random.PRNGKey(7), "train": True}),
            (y, loss, {"train": False}),
        ],
        tol=1e-11,
    )
    assert not np.allclose(first["dense_0"]["w"], other["dense_0"]["w"])


def test_batchnorm_channel_axis_and_mlp_builder(x64):
    key = jax.random.PRNGKey(13)
    model = nn.serial(nn.BatchNorm(axis=1), nn.Flatten(), nn.Dense(2))
    _, params, state = model.init(key, (-1, 3, 5))  # channels on axis 1, statistics over axes 0 and 2
    params = _f64_params(params, key)
    x = 2.0 + 3.0 * jax.random.normal(key, (4, 3, 5), jnp.float64)
    _assert_agree(model, params, state, x, jax.random.normal(key, (4, 2), jnp.float64), "squared_error", tol=1e-11)
    mlp = nn.MLP([8, 8, 2], activation="elu", batchnorm=True, dropout=0.25)
    _, params, state = mlp.init(key, (-1, 3))
    params = _f64_params(params, key)
    x = jax.random.normal(key, (10, 3), jnp.float64)
    _assert_agree(
        mlp,
        params,
        state,
        x,
        jnp.arange(10) % 2,
        "softmax_cross_entropy_with_integer_labels",
        tol=1e-11,
        key=jax.random.PRNGKey(3),
    )


def test_dropout_edge_rates(x64):
    key = jax.random.PRNGKey(14)
    for rate in (0.0, 1.0):
        model = nn.serial(nn.Dense(3), nn.Dropout(rate), nn.Dense(2))
        _, params, state = model.init(key, (-1, 2))
        params = _f64_params(params, key)
        x = jax.random.normal(key, (4, 2), jnp.float64)
        grads = _assert_agree(model, params, state, x, jnp.zeros((4, 2)), "squared_error", key=key)
        assert np.all(grads["dense_0"]["w"] == 0) == (rate == 1.0)
