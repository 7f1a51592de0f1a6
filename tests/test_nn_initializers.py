"""Initializers: sample moments against the formulas, with tolerances from the sample size."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet.nn import initializers as I

SHAPE = (400, 300)  # fan_in 400, fan_out 300; 120,000 samples
N = SHAPE[0] * SHAPE[1]

# name -> (factory, expected std, distribution)
CASES = {
    "lecun_normal": (I.lecun_normal(), math.sqrt(1 / 400), "normal"),
    "he_normal": (I.he_normal(), math.sqrt(2 / 400), "normal"),
    "glorot_normal": (I.glorot_normal(), math.sqrt(2 / 700), "normal"),
    "lecun_uniform": (I.lecun_uniform(), math.sqrt(1 / 400), "uniform"),
    "he_uniform": (I.he_uniform(), math.sqrt(2 / 400), "uniform"),
    "glorot_uniform": (I.glorot_uniform(), math.sqrt(2 / 700), "uniform"),
    "fan_in_uniform": (I.fan_in_uniform(), (1 / math.sqrt(400)) / math.sqrt(3), "uniform"),
    "normal(0.1)": (I.normal(0.1), 0.1, "normal"),
    "uniform(0.3)": (I.uniform(0.3), 0.3 / math.sqrt(3), "uniform"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_sample_moments_match_formula(name):
    init, std, dist = CASES[name]
    raw = init(jax.random.PRNGKey(7), SHAPE)
    assert raw.shape == SHAPE and raw.dtype == jnp.float32
    w = np.asarray(raw, np.float64)
    # mean: standard error std/sqrt(N); allow 5 standard errors.
    assert abs(w.mean()) < 5 * std / math.sqrt(N)
    # std: the sample std's standard error is about std * sqrt((kurtosis - 1) / (4N)).
    kurt = 3.0 if dist == "normal" else 1.8
    se = std * math.sqrt((kurt - 1) / (4 * N))
    assert abs(w.std() - std) < 5 * se
    if dist == "uniform":
        limit = std * math.sqrt(3) * (1 + 1e-6)  # float32 rounding of the bound
        assert w.max() <= limit and w.min() >= -limit
        assert w.max() > 0.99 * limit  # it does reach the edges


def test_chapter_uniform_rule_bounds():
    w = I.fan_in_uniform()(jax.random.PRNGKey(0), (64, 10))
    assert float(jnp.max(jnp.abs(w))) <= 1 / 8


def test_zeros_ones_constant_and_dtype():
    k = jax.random.PRNGKey(0)
    assert float(jnp.abs(I.zeros(k, (3, 4))).sum()) == 0.0
    assert I.ones(k, (2,), jnp.bfloat16).dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(I.constant(0.5)(k, (2, 2))), np.full((2, 2), 0.5, np.float32))


def test_same_key_same_values_different_key_different_values():
    a = I.he_normal()(jax.random.PRNGKey(3), (20, 20))
    b = I.he_normal()(jax.random.PRNGKey(3), (20, 20))
    c = I.he_normal()(jax.random.PRNGKey(4), (20, 20))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_fans():
    assert I.fans((784, 128)) == (784, 128)
    assert I.fans((3, 3, 16, 32)) == (3 * 3 * 16, 3 * 3 * 32)  # HWIO: the receptive field counts both ways
    assert I.fans((5,)) == (5, 5)


def test_aliases_are_the_glorot_and_he_rules():
    k = jax.random.PRNGKey(1)
    np.testing.assert_array_equal(np.asarray(I.xavier_normal()(k, (8, 8))), np.asarray(I.glorot_normal()(k, (8, 8))))
    np.testing.assert_array_equal(np.asarray(I.kaiming_uniform()(k, (8, 8))), np.asarray(I.he_uniform()(k, (8, 8))))


def test_get_by_name_and_errors():
    assert I.get("he_normal") is not None
    with pytest.raises(ValueError, match=r"unknown initializer 'xavier'.*glorot_normal"):
        I.get("xavier", where="Dense(4) w_init")
    with pytest.raises(ValueError, match="stddev must be finite and >= 0, got -1"):
        I.normal(-1.0)
    with pytest.raises(ValueError, match="mode must be"):
        I.variance_scaling(1.0, "fan_sum", "normal")
    with pytest.raises(ValueError, match="shape must have non-negative sizes"):
        I.zeros(None, (-2, 3))
