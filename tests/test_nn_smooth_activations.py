"""GELU (erf and tanh forms), SiLU and Softplus: float64 formulas, handwritten derivatives, layers, MLP names."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet import nn
from jaxnet.nn import activations as A

Z = np.linspace(-30.0, 30.0, 1201)

_erfc = np.vectorize(math.erfc)


def _gelu_exact(z):
    return 0.5 * z * _erfc(-z / math.sqrt(2))


def _gelu_tanh(z):
    # 1 + tanh(u) cancels for negative z; 1 + tanh(u) = 2 / (1 + exp(-2u)) keeps the digits.
    with np.errstate(over="ignore"):  # exp overflows to inf for z << 0, giving the right limit -0
        return z / (1 + np.exp(-2 * math.sqrt(2 / math.pi) * (z + 0.044715 * z**3)))


REF = {
    "gelu": (_gelu_exact, {"approximate": False}),
    "gelu_tanh": (_gelu_tanh, {"approximate": True}),
    "silu": (lambda z: z / (1 + np.exp(-z)), {}),
    "softplus": (lambda z: np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0), {}),
}


def _act(case):
    return A.get_activation("gelu" if case.startswith("gelu") else case)


@pytest.mark.parametrize("case", sorted(REF))
def test_forward_matches_float64_formula(x64, case):
    ref, hyper = REF[case]
    got = _act(case).fn(jnp.asarray(Z), **hyper)
    assert got.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(got), ref(Z), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("case", sorted(REF))
def test_derivative_matches_jax_grad(x64, case):
    act = _act(case)
    _, hyper = REF[case]
    z = jnp.asarray(Z)
    auto = jax.vmap(jax.grad(lambda t: act.fn(t, **hyper)))(z)
    np.testing.assert_allclose(np.asarray(act.derivative(z, **hyper)), np.asarray(auto), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("case", sorted(REF))
def test_derivative_matches_float64_finite_differences(x64, case):
    ref, hyper = REF[case]
    z = Z[np.abs(Z) < 8]
    h = 1e-6
    fd = (ref(z + h) - ref(z - h)) / (2 * h)
    got = _act(case).derivative(jnp.asarray(z), **hyper)
    np.testing.assert_allclose(np.asarray(got), fd, rtol=1e-7, atol=1e-9)


def test_softplus_is_stable_for_large_inputs(x64):
    z = jnp.asarray([-800.0, -40.0, 0.0, 40.0, 800.0])
    got = np.asarray(A.softplus(z))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, [0.0, math.exp(-40), math.log(2), 40.0, 800.0], rtol=1e-14)


def test_exact_and_tanh_gelu_differ_but_stay_close(x64):
    z = jnp.asarray(Z)
    diff = np.abs(np.asarray(A.gelu(z) - A.gelu(z, approximate=True)))
    assert 1e-5 < diff.max() < 1e-3  # the tanh form is an approximation, not the same function


@pytest.mark.parametrize(
    "layer, fn, hyper",
    [
        (nn.Gelu(), A.gelu, {}),
        (nn.Gelu(approximate=True), A.gelu, {"approximate": True}),
        (nn.Silu(), A.silu, {}),
        (nn.Softplus(), A.softplus, {}),
    ],
)
def test_layers_apply_the_functions(layer, fn, hyper):
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 3, 2))
    shape, params, state = layer.init(jax.random.PRNGKey(1), (-1, 3, 2))
    assert shape == (-1, 3, 2) and params == {} and state == {}
    y, _ = layer.apply(params, state, x, train=False)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(fn(x, **hyper)))
    assert layer.kind == "activation" and layer.config["fn"] == ("gelu" if "Gelu" in layer.name else layer.config["fn"])


@pytest.mark.parametrize("name", ["gelu", "gelu_tanh", "silu", "swish", "softplus"])
def test_mlp_takes_the_new_activations_by_name(name):
    model = nn.MLP([5, 2], activation=name)
    assert model.layers[1].config["fn"] in ("gelu", "silu", "softplus")
    if name == "gelu_tanh":
        assert model.layers[1].config["approximate"] is True
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 3))
    y, _ = model.apply(params, state, jnp.ones((2, 3)), train=False)
    assert y.shape == (2, 2)


def test_gelu_rejects_a_non_bool_approximate():
    with pytest.raises(TypeError, match=r"Gelu: approximate must be a bool.*got 'tanh'"):
        nn.Gelu("tanh")
