"""Schedules against their formulas, under jit, and their input checks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet.optim as O

STEPS = np.array([0, 1, 2, 4, 5, 9, 10, 19, 20, 21, 40, 99, 100, 150])


def values(schedule):
    return np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(STEPS, jnp.int32)))


@pytest.mark.parametrize(
    "schedule, formula",
    [
        (O.constant_schedule(0.3), lambda t: 0.3),
        (O.step_decay(0.1, 0.5, every=5), lambda t: 0.1 * 0.5 ** (t // 5)),  # halve every 5
        (O.step_decay(1.0, 0.1, every=20), lambda t: 0.1 ** (t // 20)),  # divide by 10 every 20
        (O.step_decay(1.0, 0.1, boundaries=[10, 40]), lambda t: 1.0 if t < 10 else (0.1 if t < 40 else 0.01)),
        (O.exponential_decay(0.2, 0.05), lambda t: 0.2 * math.exp(-0.05 * t)),
        (O.inverse_time_decay(0.2, 0.5), lambda t: 0.2 / (1 + 0.5 * t)),
        (O.cosine_decay(1.0, 100), lambda t: 0.5 * (1 + math.cos(math.pi * min(t, 100) / 100))),
        (O.cosine_decay(1.0, 100, end_value=0.1), lambda t: 0.1 + 0.45 * (1 + math.cos(math.pi * min(t, 100) / 100))),
        (O.linear_warmup(0.5, 10), lambda t: 0.5 * min(t, 10) / 10),
        (O.linear_schedule(1.0, 0.2, 40), lambda t: 1.0 - 0.8 * min(t, 40) / 40),
        (
            O.warmup_cosine_decay(1.0, 10, 110),
            lambda t: t / 10 if t < 10 else 0.5 * (1 + math.cos(math.pi * min(t - 10, 100) / 100)),
        ),
    ],
)
def test_schedule_matches_formula(schedule, formula):
    np.testing.assert_allclose(values(schedule), [formula(int(t)) for t in STEPS], rtol=1e-6, atol=1e-7)


def test_join_restarts_each_schedule_at_its_boundary():
    s = O.join([O.constant_schedule(1.0), O.exponential_decay(0.5, 0.1), O.constant_schedule(0.01)], [10, 40])
    want = [1.0 if t < 10 else (0.5 * math.exp(-0.1 * (t - 10)) if t < 40 else 0.01) for t in STEPS]
    np.testing.assert_allclose(values(s), want, rtol=1e-6)


def test_schedule_is_a_scalar_of_the_default_float_dtype(x64):
    for s in (O.exponential_decay(0.1, 0.01), O.step_decay(0.1, 0.5, every=3), O.cosine_decay(0.1, 7)):
        v = s(jnp.asarray(5, jnp.int32))
        assert v.shape == () and v.dtype == jnp.float64


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: O.step_decay(0.1, 0.5), "step_decay: give exactly one of every= and boundaries="),
        (lambda: O.step_decay(0.1, 0.5, every=5, boundaries=[3]), "give exactly one of every= and boundaries="),
        (lambda: O.step_decay(0.1, 0.5, every=0), "step_decay: every must be a positive int, got 0"),
        (
            lambda: O.step_decay(0.1, 0.5, boundaries=[5, 3]),
            r"boundaries must be increasing non-negative ints, got \[5, 3\]",
        ),
        (lambda: O.step_decay(-0.1, 0.5, every=2), r"step_decay: init_value .* got -0\.1"),
        (lambda: O.exponential_decay(0.1, -1.0), r"exponential_decay: k .* got -1\.0"),
        (lambda: O.inverse_time_decay(float("inf"), 1.0), r"inverse_time_decay: init_value .* got inf"),
        (lambda: O.cosine_decay(0.1, -5), "cosine_decay: decay_steps must be a positive int, got -5"),
        (lambda: O.join([O.constant_schedule(1.0)], [3]), "join: needs one boundary fewer than schedules"),
        (
            lambda: O.join([O.constant_schedule(1.0), O.constant_schedule(0.1)], [0]),
            "join: boundaries must be increasing positive",
        ),
        (
            lambda: O.join([O.constant_schedule(1.0), lambda t: jnp.ones(2)], [3]),
            r"join: the schedule given as schedules\[1\] must return a scalar",
        ),
        (lambda: O.warmup_cosine_decay(1.0, 10, 10), "warmup_steps must be < total_steps, got 10 and 10"),
    ],
)
def test_bad_schedule_arguments(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_non_integer_step_counts_are_type_errors():
    with pytest.raises(TypeError, match=r"cosine_decay: decay_steps must be an int, got 10\.5"):
        O.cosine_decay(0.1, 10.5)
