"""Mixed precision: parameters stored in float32, the forward and backward pass in bfloat16 or float16.

A :class:`Policy` names three dtypes: ``param_dtype`` (what the optimizer updates and
checkpoints hold), ``compute_dtype`` (what the layers compute in) and ``output_dtype`` (what the
loss sees). :func:`mixed_precision` wraps a model so that its ``apply`` casts the float
params, model state and inputs to ``compute_dtype``, runs the model, and casts the outputs to
``output_dtype`` and the new state back to its stored dtype. Gradients flow back through the
casts, so they arrive in ``param_dtype``: the optimizer never sees a low-precision number.

``fit(..., precision="bf16")`` applies the policy inside the compiled epochs. bfloat16 has
float32's range, so no loss scaling is needed; float16 does not (gradients below about 6e-8
flush to zero), and jaxnet has no dynamic loss scaling: prefer bfloat16.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxnet.nn.core import make_layer
from jaxnet.types import Layer


class Policy(NamedTuple):
    """Which dtype the params are kept in, the model computes in, and the outputs are returned in."""

    param_dtype: Any = jnp.float32
    compute_dtype: Any = jnp.float32
    output_dtype: Any = jnp.float32

    def __repr__(self) -> str:
        names = (jnp.dtype(d).name for d in self)
        return "Policy(params={}, compute={}, output={})".format(*names)


_NAMES = {
    "f32": jnp.float32,
    "float32": jnp.float32,
    "bf16": jnp.bfloat16,
    "bfloat16": jnp.bfloat16,
    "f16": jnp.float16,
    "float16": jnp.float16,
}


def get_policy(precision) -> Policy:
    """A :class:`Policy` from a name (``"f32"``, ``"bf16"``, ``"f16"``: float32 params and outputs,
    that compute dtype) or a :class:`Policy` (returned as it is).

    Raises:
      ValueError: for an unknown name; TypeError for anything else.
    """
    if isinstance(precision, Policy):
        return precision
    if isinstance(precision, str):
        if precision not in _NAMES:
            raise ValueError(f"precision must be one of {sorted(_NAMES)} or a Policy, got {precision!r}")
        return Policy(jnp.float32, _NAMES[precision], jnp.float32)
    raise TypeError(f"precision must be a name such as 'bf16' or a Policy, got {precision!r}")


def _cast_floats(tree, dtype):
    def cast(a):
        return a.astype(dtype) if jnp.issubdtype(jnp.result_type(a), jnp.floating) else a

    return jax.tree_util.tree_map(cast, tree)


def mixed_precision(model: Layer, precision) -> Layer:
    """``model`` computing under ``precision`` (a :class:`Policy` or a name such as ``"bf16"``).

    ``init`` returns the params in ``param_dtype``; ``apply(params, state, x, ...)`` casts float
    params, state and ``x`` to ``compute_dtype``, runs ``model.apply``, then returns
    ``y`` in ``output_dtype`` and the new state in the dtypes of the state given.

    Raises:
      TypeError: if ``model`` is not a Layer; ValueError/TypeError for a bad ``precision``.
    """
    if not isinstance(model, Layer):
        raise TypeError(f"mixed_precision: model must be a Layer, got {type(model).__name__}")
    policy = get_policy(precision)

    def init(key, input_shape):
        out_shape, params, state = model.init(key, input_shape)
        return out_shape, _cast_floats(params, policy.param_dtype), state

    def apply(params, state, x, *, key=None, train, mask=None):
        y, new_state = model.apply(
            _cast_floats(params, policy.compute_dtype),
            _cast_floats(state, policy.compute_dtype),
            _cast_floats(x, policy.compute_dtype),
            key=key,
            train=train,
            mask=mask,
        )
        new_state = jax.tree_util.tree_map(lambda new, old: new.astype(jnp.result_type(old)), new_state, state)
        return _cast_floats(y, policy.output_dtype), new_state

    return make_layer(
        f"mixed_precision({model.name}, {jnp.dtype(policy.compute_dtype).name})",
        init,
        apply,
        kind="mixed_precision",
        config={"policy": policy},
        layers=(model,),
        needs_key=model.needs_key,
        uses_mask=True,
    )
