"""Handwritten backprop through Conv, ConvTranspose and the pools equals jax.grad (float64, rel. err. <= 1e-10).

A few fixed CNNs cover every layer kind and layout quickly; a hypothesis property test draws random
small CNNs (1-3 spatial axes; random strides, padding, dilation and groups; pools, activations,
BatchNorm; Flatten+Dense or a global pool head) like the MLP property test does.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from jaxnet import nn
from jaxnet.autodiff import backprop, check_grads
from jaxnet.autodiff.check import relative_error
from jaxnet.autodiff.conv_rules import CONV_RULES
from jaxnet.nn import losses as L
from jaxnet.nn.combinators import layer_keys

# As check_grads measures: relative to a leaf's own scale, but never to less than u^(1/3) (6e-6 in float64) times
# the model's largest gradient, so that a gradient BatchNorm nearly cancels (the scale of a BatchNorm feeding
# another) is judged by its round-off against the model's scale, not against its own near-zero size.
FLOOR = float(np.finfo(np.float64).eps) ** (1 / 3)

FAST_COMPILE = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
    "xla_cpu_use_fusion_emitters": False,
}


def _setup(layers, input_shape, loss, seed=0):
    """A model, float64 params perturbed away from their init (random biases, BN scales), data and targets."""
    model = nn.serial(*layers)
    out_shape, params, state = model.init(jax.random.PRNGKey(seed), input_shape)
    rng = np.random.default_rng(seed)
    params = jax.tree_util.tree_map(lambda p: np.asarray(p, np.float64) + 0.2 * rng.normal(size=p.shape), params)
    state = jax.tree_util.tree_map(lambda s: np.asarray(s, np.float64), state)
    x = rng.normal(size=(input_shape[0] if input_shape[0] > 0 else 3, *input_shape[1:]))
    k = out_shape[-1]
    if loss == "softmax_cross_entropy_with_integer_labels":
        y = rng.integers(0, k, size=x.shape[0])
    else:
        y = rng.normal(size=(x.shape[0], k))
    return model, params, state, x, y


def _compare(model, params, state, x, y, loss, train=True):
    loss_fn = L.LOSSES[loss]

    def both(p):
        def objective(q):
            out, _ = model.apply(q, state, x, train=train)
            return loss_fn(out, y)

        return backprop(model, p, state, x, y, loss, train=train), jax.value_and_grad(objective)(p)

    compiled = jax.jit(both).lower(params).compile(compiler_options=FAST_COMPILE)
    (value, grads), (want_value, want) = compiled(params)
    np.testing.assert_allclose(value, want_value, rtol=1e-12)
    largest = max(float(np.max(np.abs(w))) for w in jax.tree_util.tree_leaves(want))
    assert largest > 0  # a gradient that is zero everywhere would compare equal trivially
    feeding = _feeding_batchnorm(model) if train else set()
    for (path, g), w in zip(jax.tree_util.tree_leaves_with_path(grads), jax.tree_util.tree_leaves(want), strict=True):
        assert g.shape == w.shape and g.dtype == jnp.float64
        # Params of a layer feeding a training-mode BatchNorm: judged against the model's largest gradient.
        floor = largest if path[0].key in feeding else FLOOR * largest
        err = relative_error(g, w, floor)
        assert err <= 1e-10, (jax.tree_util.keystr(path), err)


def _feeding_batchnorm(model):
    """Keys of layers whose output reaches a BatchNorm through pools only (which commute with a per-channel
    shift and positive scale). That BatchNorm cancels a shift of its input exactly and a scale up to ``eps``,
    so the gradient of such a layer's bias (0 in exact arithmetic) or per-channel scale (nearly 0: a
    difference of large terms) is round-off that only the model's largest gradient can measure."""
    keys, found = layer_keys(model.layers), set()
    for i in range(len(model.layers) - 1):
        j = i + 1
        while j < len(model.layers) and model.layers[j].kind in ("max_pool", "avg_pool"):
            j += 1
        if j < len(model.layers) and model.layers[j].kind == "batchnorm":
            found.add(keys[i])
    return found


FIXED = {
    "conv2d_pools": (
        lambda: [
            nn.Conv(4, (3, 3), strides=2, padding="SAME"),
            nn.Relu(),
            nn.MaxPool((2, 2), strides=1, padding="SAME"),  # ties among the relu zeros
            nn.Conv(6, (2, 2), padding=((1, 0), (0, 2)), dilation=2, groups=2),
            nn.BatchNorm(),
            nn.AvgPool((2, 2), strides=1, padding=1),
            nn.Flatten(),
            nn.Dense(3),
        ],
        (3, 9, 8, 2),
    ),
    "conv1d_transpose": (
        lambda: [
            nn.ConvTranspose(4, (3,), strides=2, padding="VALID"),
            nn.Tanh(),
            nn.ConvTranspose(4, (2,), strides=3, dilation=2, groups=2, padding=((2, 1),)),
            nn.MaxPool((3,), strides=2),
            nn.GlobalMaxPool(),
            nn.Dense(3),
        ],
        (2, 5, 2),
    ),
    "conv3d_channels_first": (
        lambda: [
            nn.Conv(4, (2, 2, 2), strides=(1, 2, 1), channels_first=True),
            nn.BatchNorm(axis=1),
            nn.Elu(0.7),
            nn.AvgPool((2, 1, 2), strides=1, padding="SAME", channels_first=True),
            nn.ConvTranspose(2, (2, 2, 1), strides=2, channels_first=True),
            nn.GlobalAvgPool(channels_first=True),
            nn.Dense(2),
        ],
        (3, 2, 4, 5, 3),
    ),
}


@pytest.mark.parametrize("loss", ["softmax_cross_entropy_with_integer_labels", "mean_squared_error"])
@pytest.mark.parametrize("name", sorted(FIXED))
def test_handwritten_backprop_equals_jax_grad_on_fixed_cnns(x64, name, loss):
    layers, shape = FIXED[name]
    _compare(*_setup(layers(), shape, loss), loss)


def test_backprop_in_eval_mode(x64):
    layers, shape = FIXED["conv2d_pools"]
    _compare(*_setup(layers(), shape, "mean_squared_error"), "mean_squared_error", train=False)


def test_max_pool_ties_go_to_the_first_maximum(x64):
    # All-equal windows: jax.grad and the handwritten rule both credit the first element of each window.
    layer = nn.MaxPool((2, 2))
    x = jnp.zeros((1, 4, 4, 1), jnp.float64)
    forward, backward = CONV_RULES["max_pool"]
    y, _, saved = forward(layer, {}, {}, x, None, True)
    dx, _ = backward(layer, {}, saved, jnp.ones_like(y))
    np.testing.assert_array_equal(dx, jax.grad(lambda v: jnp.sum(layer.apply({}, {}, v, train=False)[0]))(x))
    want = np.zeros((4, 4))
    want[::2, ::2] = 1.0
    np.testing.assert_array_equal(dx[0, :, :, 0], want)


def test_check_grads_accepts_cnns(x64):
    layers, shape = FIXED["conv2d_pools"]
    model, params, state, x, y = _setup(layers(), shape, "softmax_cross_entropy_with_integer_labels")
    report = check_grads(model, params, state, x, y, "softmax_cross_entropy_with_integer_labels", fd_entries=4)
    assert {"conv_0/w", "conv_0/b", "conv_3/w", "dense_7/w"} <= set(report)
    assert all(e.handwritten <= 1e-8 and e.finite_differences <= 1e-5 for e in report.values())


# --- property test ---------------------------------------------------------------------------------

ACTIVATIONS = {"relu": nn.Relu, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "elu": lambda: nn.Elu(0.8)}


def _padding(draw, rank):
    choice = draw(st.sampled_from(["SAME", "VALID", "int", "pairs"]))
    if choice == "int":
        return draw(st.integers(0, 2))
    if choice == "pairs":
        return tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(rank))
    return choice


def _out_shape(layer, input_shape):
    """``layer.init``'s output shape, traced abstractly (no params drawn), raising its ValueError."""
    found = []
    jax.eval_shape(lambda: found.append(layer.init(jax.random.PRNGKey(0), input_shape)[0]) or 0)
    return found[0]


@st.composite
def cnns(draw):
    rank = draw(st.integers(1, 3))
    size = {1: (5, 10), 2: (4, 7), 3: (3, 5)}[rank]
    channels = draw(st.integers(1, 4))
    shape = (draw(st.integers(2, 4)), *(draw(st.integers(*size)) for _ in range(rank)), channels)
    layers, current = [], (-1, *shape[1:])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv", "conv", "conv_transpose", "max_pool", "avg_pool", "act", "batchnorm"]))
        cin = current[-1]
        if kind in ("conv", "conv_transpose"):
            groups = draw(st.sampled_from([g for g in (1, 2, 3) if cin % g == 0]))
            make = nn.Conv if kind == "conv" else nn.ConvTranspose
            layer = make(
                groups * draw(st.integers(1, 2)),
                tuple(draw(st.integers(1, 3)) for _ in range(rank)),
                strides=tuple(draw(st.integers(1, 2)) for _ in range(rank)),
                padding=_padding(draw, rank),
                dilation=tuple(draw(st.integers(1, 2)) for _ in range(rank)),
                groups=groups,
            )
        elif kind in ("max_pool", "avg_pool"):
            window = tuple(draw(st.integers(1, 3)) for _ in range(rank))
            padding = draw(st.sampled_from(["SAME", "VALID", "pairs"]))
            if padding == "pairs":
                padding = tuple((draw(st.integers(0, k - 1)), draw(st.integers(0, k - 1))) for k in window)
            strides = tuple(draw(st.integers(1, 2)) for _ in range(rank))
            layer = (nn.MaxPool if kind == "max_pool" else nn.AvgPool)(window, strides, padding)
        elif kind == "act":
            layer = ACTIVATIONS[draw(st.sampled_from(sorted(ACTIVATIONS)))]()
        else:
            layer = nn.BatchNorm()
        try:
            current = _out_shape(layer, current)
        except ValueError:  # a kernel or window larger than what is left: leave the layer out
            continue
        if np.prod(current[1:]) > 2000:  # keep compilation and the float64 run small
            break
        layers.append(layer)
    head = draw(st.sampled_from(["flatten", "global_avg", "global_max"]))
    layers.append({"flatten": nn.Flatten, "global_avg": nn.GlobalAvgPool, "global_max": nn.GlobalMaxPool}[head]())
    loss = draw(st.sampled_from(["softmax_cross_entropy_with_integer_labels", "mean_squared_error"]))
    layers.append(nn.Dense(draw(st.integers(2 if loss.startswith("softmax") else 1, 4))))  # 1 class: constant loss
    return layers, shape, loss, draw(st.integers(0, 2**31 - 1))


@pytest.mark.slow
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.generate],  # shrinking recompiles every candidate: minutes for little gain
)
@given(c=cnns())
def test_handwritten_backprop_equals_jax_grad_on_random_cnns(x64, c):
    layers, shape, loss, seed = c
    model, params, state, x, y = _setup(layers, shape, loss, seed % 1000)
    _compare(model, params, state, x, y, loss)
