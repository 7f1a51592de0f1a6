"""Conv/ConvTranspose gradients in XLA:CPU's canonical layout (``grad_layout``, JAX issue 12868).

``jax.grad`` through :func:`jaxnet.nn.conv_channels_last` must equal ``jax.grad`` of the plain
convolution (float64, 1e-12) for every rank, stride, padding, dilation, group count and layout;
forward mode (``jacfwd``, ``hessian``) must keep working; and every convolution of a compiled CNN
epoch (``make_train_epoch``, a ``lax.scan``) must carry the canonical ``dim_labels``.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxnet import nn
from jaxnet.nn import initializers
from jaxnet.optim import adam
from jaxnet.train import make_train_epoch

CANONICAL = re.compile(r"^b(\d*)f_(\d*)io->b(\d*)f$")


def conv_labels(hlo: str) -> list[str]:
    """The ``dim_labels`` of every convolution in an HLO module's text."""
    return [m.group(1) for m in re.finditer(r"convolution\(.*?dim_labels=([^,\s]+)", hlo)]


def non_canonical(labels):
    """Labels other than XLA:CPU's fast ``b01f_01io->b01f`` (same spatial digits on all three)."""
    bad = []
    for lab in labels:
        m = CANONICAL.match(lab)
        if not m or len({m.group(1), m.group(2), m.group(3)}) != 1:
            bad.append(lab)
    return bad


def test_label_check_flags_the_slow_layouts():
    assert non_canonical(["b01f_01io->b01f", "b0f_0io->b0f", "b012f_012io->b012f"]) == []
    assert non_canonical(["f01b_i01o->01bf", "b01f_01oi->b01f", "bf01_oi01->bf01"]) == [
        "f01b_i01o->01bf",
        "b01f_01oi->b01f",
        "bf01_oi01->bf01",
    ]
    hlo = "%c = f32[2,3,3,4]{3,2,1,0} convolution(%a, %b), window={size=3x3}, dim_labels=f01b_i01o->01bf, x"
    assert conv_labels(hlo) == ["f01b_i01o->01bf"]


# --- values: the rule equals jax.grad of the plain convolution ------------------------------------


def _grads(layer_fn, grad_layout, x, key):
    layer = layer_fn(grad_layout)
    _, params, state = layer.init(key, x.shape)

    def loss(p, x):
        y, _ = layer.apply(p, state, x, key=None, train=True)
        return jnp.sum(jnp.sin(y) * jnp.arange(y.size, dtype=y.dtype).reshape(y.shape) / y.size)

    return jax.grad(loss, argnums=(0, 1))(params, x)


@st.composite
def conv_cases(draw):
    rank = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 2, 3]))
    cin, feats = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    ksize = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    strides = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    padding = draw(
        st.one_of(
            st.sampled_from(["SAME", "VALID"]),
            st.tuples(*[st.tuples(st.integers(0, 3), st.integers(0, 3)) for _ in range(rank)]),
        )
    )
    spatial = tuple(draw(st.integers(5, 7 if rank < 3 else 5)) for _ in range(rank))
    transpose = draw(st.booleans())
    channels_first = draw(st.booleans())
    return dict(rank=rank, groups=groups, cin=cin, feats=feats, ksize=ksize, strides=strides, dilation=dilation,
                padding=padding, spatial=spatial, transpose=transpose, channels_first=channels_first)  # fmt: skip


@pytest.mark.slow  # 15 drawn layers, each differentiated three ways (about a minute on 2 cores)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(c=conv_cases(), seed=st.integers(0, 2**16))
def test_channels_last_grads_equal_jax_grad(x64, c, seed):
    kind = nn.ConvTranspose if c["transpose"] else nn.Conv

    def layer_fn(grad_layout):
        return kind(c["feats"], c["ksize"], c["strides"], c["padding"], c["dilation"], c["groups"],
                    b_init=initializers.normal(1.0), channels_first=c["channels_first"], dtype=jnp.float64,
                    grad_layout=grad_layout)  # fmt: skip

    shape = (2, c["cin"], *c["spatial"]) if c["channels_first"] else (2, *c["spatial"], c["cin"])
    key = jax.random.PRNGKey(seed)
    x = jax.random.normal(jax.random.fold_in(key, 1), shape, jnp.float64)
    layer = layer_fn("autodiff")  # outside the try: a bad layer argument must fail the test
    try:
        layer.init(key, shape)
    except ValueError as e:  # a kernel larger than the padded input: nothing to differentiate
        assert "is larger than the padded input" in str(e)
        return
    want = _grads(layer_fn, "autodiff", x, key)
    for grad_layout in ("channels_last", "auto"):
        got = _grads(layer_fn, grad_layout, x, key)
        for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
            assert g.dtype == w.dtype == jnp.float64 and g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=0, atol=1e-12)


def test_forward_mode_and_hessian_of_a_small_cnn(x64):
    def build(grad_layout):
        return nn.serial(
            nn.Conv(2, (3,), strides=2, padding=1, dtype=jnp.float64, grad_layout=grad_layout),
            nn.Tanh(),
            nn.ConvTranspose(2, (2,), strides=2, groups=2, dtype=jnp.float64, grad_layout=grad_layout),
            nn.Flatten(),
            nn.Dense(1, dtype=jnp.float64),
        )

    x = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 1), jnp.float64)
    results = {}
    for gl in ("channels_last", "autodiff"):
        model = build(gl)
        _, params, state = model.init(jax.random.PRNGKey(0), x.shape)

        def f(p, x, model=model, state=state):
            return jnp.sum(model.apply(p, state, x, key=None, train=False)[0] ** 2)

        @jax.jit
        def derivatives(params, x, f=f):
            return (
                jax.hessian(f)(params, x),
                jax.jacfwd(f, argnums=1)(params, x),
                jax.jacrev(jax.grad(f, argnums=1), argnums=1)(params, x),
            )

        results[gl] = derivatives(params, x)
    for a, b in zip(jax.tree_util.tree_leaves(results["channels_last"]), jax.tree_util.tree_leaves(results["autodiff"]),
                    strict=True):  # fmt: skip
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)
    assert float(jnp.max(jnp.abs(results["autodiff"][1]))) > 0


@pytest.mark.parametrize(
    "ksize, strides, dilation, padding, spatial, channels_first",
    [
        ((3,), 2, 1, "SAME", (6,), False),
        ((4,), 3, 2, "VALID", (5,), True),
        ((3,), 2, 1, ((0, 3),), (4,), False),
        pytest.param((2, 3), (2, 3), (2, 1), ((1, 0), (2, 2)), (4, 3), False, marks=pytest.mark.slow),
        pytest.param((3, 3), 2, 1, "SAME", (3, 4), True, marks=pytest.mark.slow),
    ],
)
def test_strided_conv_transpose_kernel_gradient_and_forward_mode(
    x64, ksize, strides, dilation, padding, spatial, channels_first
):
    # groups=1 with strides > 1 takes the kernel gradient with the output gradient as the lhs.
    def layer_fn(grad_layout):
        return nn.ConvTranspose(3, ksize, strides, padding, dilation, b_init=initializers.normal(1.0),
                                channels_first=channels_first, dtype=jnp.float64, grad_layout=grad_layout)  # fmt: skip

    shape = (3, 2, *spatial) if channels_first else (3, *spatial, 2)
    key = jax.random.PRNGKey(7)
    x = jax.random.normal(jax.random.fold_in(key, 1), shape, jnp.float64)
    want = _grads(layer_fn, "autodiff", x, key)
    got = _grads(layer_fn, "channels_last", x, key)
    assert float(jnp.max(jnp.abs(want[0]["w"]))) > 0
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        assert g.dtype == w.dtype == jnp.float64 and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-12)
    # forward mode through the rule: the Jacobian wrt the kernel, column by column.
    results = []
    for gl in ("channels_last", "autodiff"):
        layer = layer_fn(gl)
        _, params, state = layer.init(key, shape)

        def f(w, layer=layer, params=params, state=state):
            return layer.apply({**params, "w": w}, state, x, key=None, train=False)[0]

        results.append(jax.jacfwd(f)(params["w"]))
    np.testing.assert_allclose(results[0], results[1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
def test_low_precision_grads_match_autodiff(dtype):
    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (4, 6, 6, 4)).astype(dtype)
    got = _grads(lambda gl: nn.Conv(6, (3, 3), strides=2, groups=2, dtype=dtype, grad_layout=gl), "channels_last",
                 x, key)  # fmt: skip
    want = _grads(lambda gl: nn.Conv(6, (3, 3), strides=2, groups=2, dtype=dtype, grad_layout=gl), "autodiff", x, key)
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        assert g.dtype == w.dtype == dtype
        tol = {jnp.bfloat16: 5e-2, jnp.float16: 5e-3, jnp.float32: 1e-5}[dtype]
        np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(w, np.float32), rtol=tol, atol=tol)


def test_bad_grad_layout_is_refused():
    with pytest.raises(ValueError, match=r"Conv\(4, \(3,\)\): grad_layout must be one of .*'auto'.* got 'fast'"):
        nn.Conv(4, (3,), grad_layout="fast")
    with pytest.raises(ValueError, match=r"ConvTranspose\(4, \(3, 3\)\): grad_layout must be one of"):
        nn.ConvTranspose(4, (3, 3), grad_layout=None)


# --- the compiled program: every convolution in the canonical layout --------------------------------


def _compiled_epoch_hlo(model, input_shape, batch_size, n):
    _, params, state = model.init(jax.random.PRNGKey(0), input_shape)
    opt = adam(1e-3)
    epoch = make_train_epoch(model, "softmax_cross_entropy_with_integer_labels", opt, batch_size=batch_size, n=n)
    x = jnp.zeros((n, *input_shape[1:]), jnp.float32)
    y = jnp.zeros((n,), jnp.int32)
    return epoch.lower(params, state, opt.init(params), (x, y), jax.random.PRNGKey(1)).compile().as_text()


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="grad_layout='auto' uses the rule only on the CPU")
def test_compiled_cnn_epoch_has_only_canonical_convolutions():
    model = nn.serial(
        nn.Conv(8, (3, 3)), nn.Relu(), nn.MaxPool((2, 2)),
        nn.Conv(16, (3, 3)), nn.BatchNorm(), nn.Relu(), nn.MaxPool((2, 2)),
        nn.Flatten(), nn.Dense(16), nn.Relu(), nn.Dense(10),
    )  # fmt: skip
    labels = conv_labels(_compiled_epoch_hlo(model, (-1, 12, 12, 1), batch_size=4, n=8))
    # Two forward convolutions, one input gradient and two kernel gradients, in the epoch's scan
    # (and again in its non-finite replay).
    assert len(labels) >= 5
    assert non_canonical(labels) == []


@pytest.mark.slow
@pytest.mark.skipif(jax.default_backend() != "cpu", reason="grad_layout='auto' uses the rule only on the CPU")
def test_compiled_epoch_canonical_for_1d_3d_strided_grouped_transposed_channels_first():
    model = nn.serial(
        nn.Conv(4, (3,), strides=2, dilation=1, channels_first=True), nn.Relu(),
        nn.Conv(4, (3,), groups=2, dilation=2, padding="VALID", channels_first=True), nn.Relu(),
        nn.ConvTranspose(2, (3,), strides=1, channels_first=True),
        nn.Flatten(), nn.Dense(3),
    )  # fmt: skip
    labels = conv_labels(_compiled_epoch_hlo(model, (-1, 2, 24), batch_size=4, n=8))
    assert len(labels) >= 8 and non_canonical(labels) == []
    model3 = nn.serial(nn.Conv(3, (2, 2, 2), strides=(1, 2, 1)), nn.Relu(), nn.Conv(2, (2, 2, 2)), nn.Flatten(),
                       nn.Dense(3))  # fmt: skip
    labels = conv_labels(_compiled_epoch_hlo(model3, (-1, 4, 4, 4, 1), batch_size=2, n=4))
    assert len(labels) >= 4 and non_canonical(labels) == []


@pytest.mark.slow
@pytest.mark.skipif(jax.default_backend() != "cpu", reason="grad_layout='auto' uses the rule only on the CPU")
def test_strided_conv_transpose_kernel_gradient_is_canonical():
    model = nn.serial(nn.ConvTranspose(2, (3,), strides=2), nn.Flatten(), nn.Dense(3))
    labels = conv_labels(_compiled_epoch_hlo(model, (-1, 6, 2), batch_size=4, n=8))
    assert len(labels) >= 2 and non_canonical(labels) == []  # the forward convolution and the kernel gradient
    model2 = nn.serial(
        nn.ConvTranspose(3, (3, 3), strides=2, channels_first=True), nn.Relu(),
        nn.ConvTranspose(2, (2, 3), strides=(2, 1), padding="VALID", dilation=(1, 2)),
        nn.Flatten(), nn.Dense(3),
    )  # fmt: skip
    labels = conv_labels(_compiled_epoch_hlo(model2, (-1, 2, 5, 4), batch_size=4, n=8))
    assert len(labels) >= 5 and non_canonical(labels) == []
