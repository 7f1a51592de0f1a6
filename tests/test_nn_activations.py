"""Activation functions, their handwritten derivatives, and the values at kinks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet.nn import activations as A

Z = np.linspace(-6.0, 6.0, 241)  # includes 0 exactly

REF = {
    "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), {}),
    "tanh": (np.tanh, {}),
    "relu": (lambda z: np.maximum(z, 0), {}),
    "leaky_relu": (lambda z, alpha: np.where(z > 0, z, alpha * z), {"alpha": 0.01}),
    "elu": (lambda z, alpha: np.where(z > 0, z, alpha * (np.exp(z) - 1)), {"alpha": 1.3}),
    "step": (lambda z: (z > 0).astype(float), {}),
    "identity": (lambda z: z, {}),
}


@pytest.mark.parametrize("name", sorted(REF))
def test_forward_matches_numpy_float64(x64, name):
    ref, hyper = REF[name]
    got = A.get_activation(name).fn(jnp.asarray(Z), **hyper)
    assert got.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(got), ref(Z, **hyper), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("name", sorted(REF))
def test_derivative_matches_jax_grad_away_from_kinks(x64, name):
    act = A.get_activation(name)
    _, hyper = REF[name]
    z = jnp.asarray(Z[np.abs(Z) > 1e-9])
    auto = jax.vmap(jax.grad(lambda t: act.fn(t, **hyper)))(z)
    np.testing.assert_allclose(np.asarray(act.derivative(z, **hyper)), np.asarray(auto), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "elu"])
def test_derivative_matches_finite_differences(x64, name):
    act = A.get_activation(name)
    _, hyper = REF[name]
    z = jnp.asarray(Z[np.abs(Z) > 1e-3])
    h = 1e-6
    fd = (act.fn(z + h, **hyper) - act.fn(z - h, **hyper)) / (2 * h)
    np.testing.assert_allclose(np.asarray(act.derivative(z, **hyper)), np.asarray(fd), rtol=1e-6, atol=1e-9)


def test_values_at_kinks_are_documented_choices(x64):
    zero = jnp.zeros(())
    assert float(A.relu_derivative(zero)) == 0.0
    assert float(jax.grad(A.relu)(zero)) == 0.0  # jax agrees with 1{z > 0}
    assert float(A.leaky_relu_derivative(zero, alpha=0.01)) == pytest.approx(0.01)
    assert float(A.prelu_derivative(zero, 0.3)) == pytest.approx(0.3)
    assert float(A.elu_derivative(zero, alpha=2.0)) == pytest.approx(2.0)
    assert float(A.step_derivative(zero)) == 0.0
    assert float(A.step(zero)) == 0.0 and float(A.step(jnp.asarray(1e-12))) == 1.0


def test_prelu_and_elu_alpha_derivatives_match_jax_grad(x64):
    z = jnp.asarray(Z)
    for fn, dfa in [(A.prelu, A.prelu_alpha_derivative), (A.elu, A.elu_alpha_derivative)]:
        auto = jax.vmap(jax.grad(fn, argnums=1), in_axes=(0, None))(z, 0.7)
        np.testing.assert_allclose(np.asarray(dfa(z, 0.7)), np.asarray(auto), rtol=1e-12, atol=1e-14)
        dz = jax.vmap(jax.grad(fn), in_axes=(0, None))(z[np.abs(Z) > 1e-9], 0.7)
        dz_hand = (A.prelu_derivative if fn is A.prelu else A.elu_derivative)(z[np.abs(Z) > 1e-9], 0.7)
        np.testing.assert_allclose(np.asarray(dz_hand), np.asarray(dz), rtol=1e-12)


def test_prelu_equals_chapter_max_form_for_alpha_below_one(x64):
    z = jnp.asarray(Z)
    np.testing.assert_array_equal(np.asarray(A.prelu(z, 0.2)), np.maximum(0.2 * Z, Z))


def test_elu_large_inputs_have_finite_gradients():
    z = jnp.array([-1e4, -50.0, 0.0, 50.0, 1e4], jnp.float32)
    g = jax.vmap(jax.grad(A.elu))(z)
    assert bool(jnp.all(jnp.isfinite(g)))
    assert bool(jnp.all(jnp.isfinite(A.elu(z))))


def test_softmax_vjps_match_jax(x64, rng):
    z = jnp.asarray(rng.normal(size=(5, 7)) * 3)
    g = jnp.asarray(rng.normal(size=(5, 7)))
    y = A.softmax(z)
    np.testing.assert_allclose(np.asarray(y.sum(-1)), 1.0, rtol=1e-14)
    _, vjp = jax.vjp(A.softmax, z)
    np.testing.assert_allclose(np.asarray(A.softmax_vjp(y, g)), np.asarray(vjp(g)[0]), rtol=1e-12, atol=1e-14)
    _, vjp = jax.vjp(A.log_softmax, z)
    np.testing.assert_allclose(np.asarray(A.log_softmax_vjp(z, g)), np.asarray(vjp(g)[0]), rtol=1e-12, atol=1e-14)


def test_log_softmax_is_stable_for_huge_logits():
    z = jnp.array([[1e4, -1e4, 0.0]], jnp.float32)
    out = A.log_softmax(z)
    assert bool(jnp.all(jnp.isfinite(out)))
    assert float(out[0, 0]) == 0.0


def test_unknown_activation_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown activation 'swishy'.*relu"):
        A.get_activation("swishy")
