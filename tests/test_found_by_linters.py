"""Regression tests for the bugs that ruff (B905: zip without strict=) and mypy found.

Each test fails on the code as it was before the fix.
"""

import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet.optim as O
from jaxnet.train import History

PARAMS = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(0.5)}
GRADS = {"w": jnp.array([10.0, 10.0]), "b": jnp.array(10.0)}


def test_chain_rejects_the_state_of_a_shorter_chain():
    # Before: zip(transforms, state.states) stopped at the shorter one, so the clipping chain ran
    # only its first transform and returned unclipped SGD updates with a one-entry state.
    short = O.chain(O.sgd(0.1))
    long = O.chain(O.sgd(0.1), O.clip_by_value(0.5))
    with pytest.raises(TypeError, match=r"chain\.update: expected the ChainState of 2 transforms"):
        long.update(GRADS, short.init(PARAMS), PARAMS)
    with pytest.raises(TypeError, match=r"got 2 states"):
        short.update(GRADS, long.init(PARAMS), PARAMS)
    with pytest.raises(TypeError, match=r"got dict"):
        long.update(GRADS, {}, PARAMS)


def test_chain_with_its_own_state_still_applies_every_transform():
    opt = O.chain(O.sgd(0.1), O.clip_by_value(0.5))
    updates, state = opt.update(GRADS, opt.init(PARAMS), PARAMS)
    np.testing.assert_allclose(updates["w"], [-0.5, -0.5])  # -0.1 * 10 = -1, clipped to -0.5
    assert len(state.states) == 2


def test_in_asks_a_history_for_a_column_as_for_a_dict():
    # ruff's SIM118 turned cli.py's `"val_loss" in h.keys()` into `"val_loss" in h`; History had keys() but no
    # __contains__, so `in` iterated h[0], h[1], ... and `jaxnet train` crashed with KeyError when plotting.
    h = History([{"epoch": 1, "loss": 0.5, "val_loss": 0.7}])
    assert "val_loss" in h and "loss" in h
    assert "val_accuracy" not in h and 0 not in h
    assert "loss" not in History()
