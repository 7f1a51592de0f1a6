"""Property test: handwritten backprop equals jax.grad (float64, rel. err. <= 1e-10) on random models
built from LayerNorm, RMSNorm, Embedding, GELU/SiLU/Softplus, Reshape and the branching combinators
(FanOut, parallel, FanInSum, FanInConcat, residual), with Dense and Dropout between them.

Every LayerNorm sees at least 3 values and every RMSNorm at least 2: with fewer, the normalized output
is a sign (``x / sqrt(x^2 + eps)``), whose derivative ``eps / (x^2 + eps)^(3/2)`` is all cancellation,
so both sides would only compare round-off. A gradient that is zero in exact arithmetic (the bias of a
Dense feeding a LayerNorm) is judged against the model's scale, as :func:`jaxnet.autodiff.check_grads`
does: the relative error's denominator is at least ``u^(1/3)`` times the largest gradient entry. Both
gradients compile together in one program with XLA's cheap optimisation level, as in
tests/test_autodiff_property.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from jaxnet import nn
from jaxnet.autodiff import backprop
from jaxnet.autodiff.check import relative_error
from jaxnet.nn import losses as L

FAST_COMPILE = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
    "xla_cpu_use_fusion_emitters": False,
}

ACTS = {
    "gelu": nn.Gelu,
    "gelu_tanh": lambda: nn.Gelu(approximate=True),
    "silu": nn.Silu,
    "softplus": nn.Softplus,
    "tanh": nn.Tanh,
}
BLOCKS = ["dense", "layernorm", "rmsnorm", "residual", "concat", "sum", "reshape", "dropout_residual"]


@st.composite
def cases(draw):
    return dict(
        embed=draw(st.booleans()),
        n_in=draw(st.integers(1, 6)),
        blocks=draw(st.lists(st.sampled_from(BLOCKS), min_size=1, max_size=5)),
        sizes=draw(st.lists(st.integers(1, 8), min_size=10, max_size=10)),
        acts=draw(st.lists(st.sampled_from(sorted(ACTS)), min_size=5, max_size=5)),
        affine=draw(st.booleans()),
        loss=draw(st.sampled_from(["squared_error", "softmax_cross_entropy_with_integer_labels"])),
        n_out=draw(st.integers(2, 5)),
        batch=draw(st.integers(1, 6)),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


def _layers(c):
    """The model's layers and the input width/kind; sizes and activations are drawn, cycled."""
    size = iter(c["sizes"] * 4).__next__
    act = lambda i: ACTS[c["acts"][i % 5]]()  # noqa: E731
    layers = []
    if c["embed"]:
        layers += [nn.Embedding(7, size() + 2), nn.LayerNorm(affine=c["affine"]), nn.Reshape((-1,))]
    for i, b in enumerate(c["blocks"]):
        if b == "dense":
            layers += [nn.Dense(size()), act(i)]
        elif b == "layernorm":
            layers += [nn.Dense(size() + 2), nn.LayerNorm(affine=c["affine"])]
        elif b == "rmsnorm":
            layers += [nn.Dense(size() + 1), nn.RMSNorm(affine=c["affine"])]
        elif b == "residual":
            w = size()
            layers += [nn.Dense(w), nn.residual(nn.serial(nn.Dense(size()), act(i), nn.Dense(w)))]
        elif b == "concat":
            layers += [
                nn.FanOut(2),
                nn.parallel(nn.Dense(size()), nn.serial(nn.Dense(size()), act(i))),
                nn.FanInConcat(),
            ]
        elif b == "sum":
            w = size()
            branches = nn.parallel(
                nn.Dense(w), nn.serial(nn.Dense(size() + 1), nn.RMSNorm(), nn.Dense(w), act(i)), nn.Dense(w)
            )
            layers += [nn.FanOut(3), branches, nn.FanInSum()]
        elif b == "reshape":
            layers += [
                nn.Dense(2 * size()),
                nn.Reshape((2, -1)),
                nn.Dense(size() + 1),
                act(i),
                nn.LayerNorm(axis=(1, 2), affine=c["affine"]),
                nn.Reshape((-1,)),
            ]
        else:  # dropout_residual: a stochastic block, its key fold_in(fold_in(key, position), 0)
            w = size()
            layers += [nn.Dense(w), nn.residual(nn.serial(nn.Dense(w), act(i), nn.Dropout(0.3)))]
    layers.append(nn.Dense(c["n_out"]))
    return layers


def _build(c):
    rng = np.random.default_rng(c["seed"])
    model = nn.serial(*_layers(c))
    b = c["batch"]
    x = rng.integers(0, 7, size=(b, c["n_in"])) if c["embed"] else rng.normal(size=(b, c["n_in"]))
    _, params, state = model.init(jax.random.PRNGKey(c["seed"] % 1000), (-1, c["n_in"]))
    # float64 params, moved away from init so that gamma != 1 and beta != 0 are exercised too.
    params = jax.tree_util.tree_map(
        lambda p: jnp.asarray(np.asarray(p, np.float64) + 0.3 * rng.normal(size=np.shape(p))), params
    )
    y = rng.normal(size=(b, c["n_out"])) if c["loss"] == "squared_error" else rng.integers(0, c["n_out"], size=b)
    return model, params, state, jnp.asarray(x), y


def _check(c):
    model, params, state, x, y = _build(c)
    loss_fn = L.LOSSES[c["loss"]]
    key = jax.random.PRNGKey(c["seed"] % 997)

    def both(p):
        def objective(q):
            out, _ = model.apply(q, state, x, key=key, train=True)
            return loss_fn(out, y)

        return backprop(model, p, state, x, y, c["loss"], key=key), jax.value_and_grad(objective)(p)

    compiled = jax.jit(both).lower(params).compile(compiler_options=FAST_COMPILE)
    (value, grads), (want_value, want) = compiled(params)
    assert np.isfinite(float(want_value))
    np.testing.assert_allclose(value, want_value, rtol=1e-12)
    want_leaves = jax.tree_util.tree_leaves(want)
    floor = float(jnp.finfo(jnp.float64).eps) ** (1 / 3) * max(float(jnp.max(jnp.abs(w))) for w in want_leaves)
    for (path, g), w in zip(jax.tree_util.tree_leaves_with_path(grads), want_leaves, strict=True):
        assert g.shape == w.shape and g.dtype == jnp.float64
        err = relative_error(g, w, floor)
        assert err <= 1e-10, (jax.tree_util.keystr(path), err, c)


def test_handwritten_backprop_equals_jax_grad_on_a_model_with_every_new_layer(x64):
    _check(
        dict(
            embed=True,
            n_in=3,
            blocks=["residual", "sum", "concat"],  # with embed (Embedding, LayerNorm, Reshape): every new kind
            sizes=[3, 4, 2, 5, 3, 2, 4, 3, 2, 5],
            acts=sorted(ACTS),
            affine=True,
            loss="softmax_cross_entropy_with_integer_labels",
            n_out=3,
            batch=4,
            seed=12,
        )
    )


@pytest.mark.slow
@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # shrinking recompiles each candidate: report the case as drawn
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(c=cases())
def test_handwritten_backprop_equals_jax_grad_on_random_layer_models(x64, c):
    _check(c)
