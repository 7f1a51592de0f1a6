"""Shared fixtures. Tests comparing against float64 references enable x64 locally."""

import jax
import numpy as np
import pytest


@pytest.fixture
def x64():
    """Run a test with 64-bit floats enabled, restoring the previous setting afterwards."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# Per-test limit for tests not marked slow (pyproject.toml sets 600 s for the slow ones).
FAST_TEST_TIMEOUT_S = 300


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("slow") is None and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(FAST_TEST_TIMEOUT_S))
