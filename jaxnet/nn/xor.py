"""The chapter's hand-weighted XOR network (§4.1.3).

Two hidden threshold units and one output unit::

    h1 = step(x1 + x2 - 0.5)      (at least one input is on)
    h2 = step(x1 + x2 - 1.5)      (both inputs are on)
    y  = step(h1 - h2 - 0.5)      (exactly one input is on)

where ``step(z) = 1{z > 0}`` is what the chapter calls "sign".
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from jaxnet.nn.activation_layers import Step
from jaxnet.nn.combinators import intermediates, serial
from jaxnet.nn.dense import Dense
from jaxnet.types import Array, Layer, Params, State


def xor_network(dtype: DTypeLike = jnp.float32) -> tuple[Layer, Params, State]:
    """The XOR network with the chapter's fixed weights.

    Returns:
      ``(model, params, state)``: ``model = serial(Dense(2), Step(), Dense(1), Step())``.
    """
    model = serial(Dense(2), Step(), Dense(1), Step())
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 2))
    params = dict(params)
    params["dense_0"] = {"w": jnp.array([[1.0, 1.0], [1.0, 1.0]], dtype), "b": jnp.array([-0.5, -1.5], dtype)}
    params["dense_2"] = {"w": jnp.array([[1.0], [-1.0]], dtype), "b": jnp.array([-0.5], dtype)}
    return model, params, state


def xor_table(x: Array | None = None) -> dict[str, Array]:
    """Every column of the chapter's XOR table, computed by the network.

    Returns a dict of arrays ``x1, x2, h1, h2, z, y`` (``z = h1 - h2 - 0.5`` is the
    output unit's pre-activation), one row per input; the default input is the four
    points ``00, 01, 10, 11``.
    """
    model, params, state = xor_network()
    if x is None:
        x = jnp.array([[0, 0], [0, 1], [1, 0], [1, 1]], jnp.float32)
    _, _z1, h, z2, y = intermediates(model, params, state, x, train=False)
    return {"x1": x[:, 0], "x2": x[:, 1], "h1": h[:, 0], "h2": h[:, 1], "z": z2[:, 0], "y": y[:, 0]}
