"""Positions for sequence models: rotary embeddings, learned and sinusoidal position tables.

* :func:`apply_rope` rotates each pair ``(x[2i], x[2i+1])`` of a head by the angle
  ``position * base^(-2i/head_dim)`` (Su et al. 2021, RoFormer, eq. 34), so that the dot product
  of a rotated query and key depends on their relative position only.
* :func:`LearnedPositions` adds a learned vector per position (GPT-2, BERT).
* :func:`SinusoidalPositions` adds the fixed table of Vaswani et al. 2017 (section 3.5):
  ``PE[p, 2i] = sin(p / base^(2i/d))``, ``PE[p, 2i+1] = cos(p / base^(2i/d))``.

Positions count from 0 at the first token: padding belongs at the end of a sequence.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnet.nn import initializers
from jaxnet.nn.core import check_real, check_size, make_layer
from jaxnet.types import Layer


def apply_rope(x: jax.Array, positions: jax.Array, base: float = 10000.0) -> jax.Array:
    """Rotary position embedding (Su et al. 2021): rotate each feature pair by ``position * theta_i``.

    With ``theta_i = base^(-2i/d)`` for ``i = 0 .. d/2 - 1`` and ``d = head_dim``::

        y[2i]   = x[2i] cos(p theta_i) - x[2i+1] sin(p theta_i)
        y[2i+1] = x[2i] sin(p theta_i) + x[2i+1] cos(p theta_i)

    This is the paper's interleaved layout. Implementations that rotate the two halves of a head
    instead (``rotate_half``, as Hugging Face's LLaMA) differ by a fixed permutation of each head's
    features, which a projection's weights absorb.

    Args:
      x: ``[..., time, heads, head_dim]`` (e.g. ``[batch, time, heads, head_dim]``), ``head_dim`` even.
      positions: the position of each token, ``[time]`` or ``[batch, time]`` (ints or floats).
      base: the wavelength base, ``> 0`` (default 10000, as the paper).

    Returns:
      An array of ``x``'s shape and dtype; angles are computed in ``promote_types(x.dtype, float32)``.

    Raises:
      ValueError: for fewer than 3 axes, an odd ``head_dim``, positions that do not match the time
        axis, or ``base <= 0``.
    """
    x = jnp.asarray(x)
    base = check_real("apply_rope", "base", base, low=0.0, low_open=True)
    if x.ndim < 3:
        raise ValueError(f"apply_rope: x must be [..., time, heads, head_dim], got shape {tuple(x.shape)}")
    d = x.shape[-1]
    if d % 2:
        raise ValueError(f"apply_rope: head_dim must be even to rotate pairs of features, got {tuple(x.shape)}")
    pos = jnp.asarray(positions)
    t = x.shape[-3]
    if pos.ndim not in (1, 2) or pos.shape[-1] != t or (pos.ndim == 2 and (x.ndim < 4 or pos.shape[0] != x.shape[0])):
        raise ValueError(
            f"apply_rope: positions must have shape [time] = ({t},) or [batch, time] matching x of shape "
            f"{tuple(x.shape)}, got {tuple(pos.shape)}"
        )
    ctype = jnp.promote_types(x.dtype, jnp.float32)
    theta = base ** (-jnp.arange(0, d, 2, dtype=ctype) / d)  # [d/2]
    angle = pos.astype(ctype)[..., None] * theta  # [..., time, d/2]
    cos, sin = jnp.cos(angle)[..., None, :], jnp.sin(angle)[..., None, :]  # broadcast over heads
    pairs = x.astype(ctype).reshape(*x.shape[:-1], d // 2, 2)
    even, odd = pairs[..., 0], pairs[..., 1]
    y = jnp.stack([even * cos - odd * sin, even * sin + odd * cos], axis=-1)
    return y.reshape(x.shape).astype(x.dtype)


def sinusoidal_table(length: int, features: int, base: float = 10000.0, dtype=jnp.float32) -> jax.Array:
    """The ``[length, features]`` table of Vaswani et al. 2017: ``sin``/``cos`` of ``p / base^(2i/d)``.

    Column ``2i`` holds ``sin(p / base^(2i/d))`` and column ``2i+1`` ``cos`` of the same angle; an odd
    ``features`` drops the last cosine column.
    """
    half = (features + 1) // 2
    pos = jnp.arange(length, dtype=dtype)[:, None]
    angle = pos / base ** (jnp.arange(half, dtype=dtype) * 2 / features)
    table = jnp.stack([jnp.sin(angle), jnp.cos(angle)], axis=-1).reshape(length, 2 * half)
    return table[:, :features]


def _check_seq(display: str, shape, where: str, max_len: int | None) -> None:
    if len(shape) != 3:
        raise ValueError(f"{display}{where} expected input of shape [batch, time, features], got {tuple(shape)}")
    if shape[-1] == -1:
        raise ValueError(f"{display}{where}: the features axis must be known, got {tuple(shape)}")
    if max_len is not None and shape[1] > max_len:
        raise ValueError(
            f"{display}{where}: the sequence has {shape[1]} positions, more than max_len={max_len}; "
            f"build LearnedPositions with max_len >= {shape[1]} or cut the sequence"
        )


def LearnedPositions(max_len: int, w_init=None, *, name: str | None = None, dtype=jnp.float32) -> Layer:
    """Add a learned vector per position: ``y[b, t] = x[b, t] + P[t]`` for ``t < time <= max_len``.

    Args:
      max_len: the longest sequence the table covers, a positive int.
      w_init: initializer of the ``[max_len, features]`` table; default ``normal(0.02)`` (GPT-2).
      name: the key ``serial`` files the params under (default ``learnedpositions_<position>``).
      dtype: dtype of the table.

    Params: ``{"embedding": [max_len, features]}``. No state. Input and output ``[batch, time, features]``.

    Raises:
      ValueError: for a non-positive ``max_len``; at init/apply, for an input that is not
        ``[batch, time, features]`` or a sequence longer than ``max_len``.
    """
    check_size("LearnedPositions", "max_len", max_len)
    display = f"LearnedPositions({max_len})"
    w_init = initializers.get(initializers.normal(0.02) if w_init is None else w_init, where=f"{display} w_init")

    def init(key, input_shape):
        _check_seq(display, input_shape, ".init", max_len)
        return input_shape, {"embedding": w_init(key, (max_len, input_shape[-1]), dtype)}, {}

    def apply(params, state, x, *, key, train):
        x = jnp.asarray(x)
        _check_seq(display, x.shape, "", max_len)
        table = params["embedding"]
        if table.shape[-1] != x.shape[-1]:
            raise ValueError(f"{display} expected {table.shape[-1]} features (as at init), got {tuple(x.shape)}")
        return x + table[: x.shape[1]], state

    return make_layer(display, init, apply, kind="learned_positions", config={"max_len": max_len}, scope=name)


def SinusoidalPositions(base: float = 10000.0, *, name: str | None = None) -> Layer:
    """Add the fixed sinusoidal table of Vaswani et al. 2017: ``y = x + PE[:time]`` (see :func:`sinusoidal_table`).

    No params, no state, any length. The sum is computed in ``promote_types(x.dtype, float32)``
    and returned in ``x``'s floating dtype (float64 stays float64; an integer input gives float32).

    Args:
      base: the wavelength base, ``> 0`` (default 10000).
      name: the key ``serial`` files it under (default ``sinusoidalpositions_<position>``).

    Raises:
      ValueError: for ``base <= 0``; at init/apply, for an input that is not ``[batch, time, features]``.
    """
    base = check_real("SinusoidalPositions", "base", base, low=0.0, low_open=True)
    display = "SinusoidalPositions()" if base == 10000.0 else f"SinusoidalPositions({base:g})"

    def init(key, input_shape):
        _check_seq(display, input_shape, ".init", None)
        return input_shape, {}, {}

    def apply(params, state, x, *, key, train):
        x = jnp.asarray(x)
        _check_seq(display, x.shape, "", None)
        ctype = jnp.promote_types(x.dtype, jnp.float32)
        table = sinusoidal_table(x.shape[1], x.shape[2], base, ctype)
        out_dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else ctype
        return (x.astype(ctype) + table).astype(out_dtype), state

    return make_layer(display, init, apply, kind="sinusoidal_positions", config={"base": base}, scope=name)
