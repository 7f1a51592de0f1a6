"""Optimizers on bfloat16 parameters: the decay complements must not round to zero."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet as jn


@pytest.mark.parametrize("make", [lambda: jn.adam(1e-2), lambda: jn.adamw(1e-2), lambda: jn.rmsprop(1e-2)])
def test_bfloat16_second_moment_grows_and_training_converges(make):
    opt = make()
    params = {"w": jnp.full((8,), 3.0, jnp.bfloat16)}
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        grads = jax.grad(lambda p: jnp.sum(p["w"].astype(jnp.float32) ** 2))(params)
        updates, state = opt.update(grads, state, params)
        return jn.apply_updates(params, updates), state

    params, state = step(params, state)
    nu = state.nu["w"]
    assert nu.dtype == jnp.bfloat16
    # (1 - b2) g^2 with g = 6: about 0.036 for adam's b2 = 0.999, 0.36 for rmsprop's alpha = 0.99
    assert float(nu[0]) > 0.01
    for _ in range(600):
        params, state = step(params, state)
    w = np.asarray(params["w"], np.float32)
    assert np.all(np.isfinite(w)) and np.max(np.abs(w)) < 0.2
