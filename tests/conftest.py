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
