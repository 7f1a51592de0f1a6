"""Property test: handwritten backprop equals jax.grad on random MLPs (float64, rel. err. <= 1e-10).

Random depth (1-5 hidden layers), widths (1-64), every activation, every loss, batch 1-32,
optional ``where`` weights and L1/L2 penalties. Compilation is the cost of each example, so both
gradients are compiled together in one program with XLA's cheap optimisation level (the numbers
do not depend on it: both sides compile the same way) and params are drawn with NumPy, not ``init``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxnet import nn
from jaxnet.autodiff import backprop
from jaxnet.autodiff import penalties as P
from jaxnet.autodiff.check import relative_error
from jaxnet.nn import losses as L
from jaxnet.nn.combinators import layer_keys

FAST_COMPILE = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
    "xla_cpu_use_fusion_emitters": False,
}

HIDDEN = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.Relu,
    "leaky_relu": lambda: nn.LeakyRelu(0.1),
    "prelu": nn.PRelu,
    "elu": lambda: nn.Elu(0.9),
    "elu_learned": lambda: nn.Elu(1.2, learnable=True),
    "step": nn.Step,
    "identity": nn.Identity,
}
HEADS = {"none": None, "sigmoid": nn.Sigmoid, "softmax": nn.Softmax, "log_softmax": nn.LogSoftmax, "tanh": nn.Tanh}


@st.composite
def cases(draw):
    loss = draw(st.sampled_from(sorted(L.LOSSES)))
    widths = draw(st.lists(st.integers(1, 64), min_size=1, max_size=5))
    act = draw(st.sampled_from(sorted(HIDDEN)))
    n_out = draw(st.integers(1, 8))
    if loss == "binary_cross_entropy":
        head = "sigmoid"  # probabilities
    elif loss in ("squared_error", "mean_squared_error"):
        head = draw(st.sampled_from(sorted(HEADS)))
    else:
        head = "none"  # logits
    return dict(
        loss=loss,
        widths=widths,
        act=act,
        head=head,
        n_out=n_out,
        n_in=draw(st.integers(1, 64)),
        batch=draw(st.integers(1, 32)),
        weighted=draw(st.booleans()),
        l1=draw(st.sampled_from([0.0, 0.03])),
        l2=draw(st.sampled_from([0.0, 0.2])),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


def _build(c):
    rng = np.random.default_rng(c["seed"])
    layers = []
    for w in c["widths"]:
        layers += [nn.Dense(w), HIDDEN[c["act"]]()]
    layers.append(nn.Dense(c["n_out"]))
    if HEADS[c["head"]] is not None:
        layers.append(HEADS[c["head"]]())
    model = nn.serial(*layers)
    params, fan_in = {}, c["n_in"]
    for key, layer in zip(layer_keys(layers), layers, strict=True):
        if layer.kind == "dense":
            n = layer.config["n"]
            params[key] = {"w": rng.normal(size=(fan_in, n)) / np.sqrt(fan_in), "b": 0.3 * rng.normal(size=n)}
            fan_in = n
        elif layer.kind in ("prelu", "elu"):
            params[key] = {"alpha": np.float64(rng.uniform(0.05, 1.5))}
        else:
            params[key] = {}
    state = {k: {} for k in params}
    b, k = c["batch"], c["n_out"]
    x = rng.normal(size=(b, c["n_in"]))
    if c["loss"] in ("binary_cross_entropy", "binary_cross_entropy_with_logits"):
        y = rng.integers(0, 2, size=(b, k)).astype(np.float64)
    elif c["loss"] == "softmax_cross_entropy":
        y = rng.dirichlet(np.ones(k), size=b)
    elif c["loss"] == "softmax_cross_entropy_with_integer_labels":
        y = rng.integers(0, k, size=b)
    else:
        y = rng.normal(size=(b, k))
    where = rng.uniform(0, 2, size=b) * (rng.uniform(size=b) > 0.2) if c["weighted"] else None
    pens = [(kind, lam) for kind, lam in (("l1", c["l1"]), ("l2", c["l2"])) if lam > 0]
    return model, params, state, x, y, where, pens


@pytest.mark.slow
@settings(
    max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(c=cases())
def test_handwritten_backprop_equals_jax_grad_on_random_mlps(x64, c):
    model, params, state, x, y, where, pens = _build(c)
    loss_fn = L.LOSSES[c["loss"]]
    specs = P.parse_penalties(pens)

    def both(p):
        def objective(q):
            out, _ = model.apply(q, state, x, train=True)
            return loss_fn(out, y, where) + (P.penalties_value(q, specs) if specs else 0.0)

        return backprop(model, p, state, x, y, c["loss"], where=where, penalties=pens), jax.value_and_grad(objective)(p)

    compiled = jax.jit(both).lower(params).compile(compiler_options=FAST_COMPILE)
    (value, grads), (want_value, want) = compiled(params)
    assert np.isfinite(float(want_value))
    np.testing.assert_allclose(value, want_value, rtol=1e-12)
    for (path, g), w in zip(jax.tree_util.tree_leaves_with_path(grads), jax.tree_util.tree_leaves(want), strict=True):
        assert g.shape == w.shape and g.dtype == jnp.float64
        err = relative_error(g, w)
        assert err <= 1e-10, (jax.tree_util.keystr(path), err, c)
