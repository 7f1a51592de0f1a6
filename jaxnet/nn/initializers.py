"""Weight initializers: pure functions ``init(key, shape, dtype=float32) -> array``.

Plain ones (``zeros``, ``ones``) are initializers themselves; parameterised ones are
factories that return an initializer (``normal(0.01)``, ``he_normal()``), as in
``jax.nn.initializers``.

Fans: a Dense kernel ``(n_in, n_out)`` has ``fan_in = n_in`` and ``fan_out = n_out``. A
convolution kernel is laid out HWIO, ``(*kernel_size, in_channels, out_channels)`` (the last
two axes are the input and output channels, every earlier axis is spatial), and its fans count
the receptive field ``r = prod(kernel_size)``: ``fan_in = r * in_channels`` and
``fan_out = r * out_channels``, as in Flax, Keras and PyTorch.

The chapter (§4.3.2) and the standard names, side by side:

=======================================  =====================  ==========================
chapter's rule                           name here               distribution
=======================================  =====================  ==========================
all zero (fails: symmetric units)        ``zeros``               0
N(0, 0.01) or N(0, 0.1)                  ``normal(stddev)``      N(0, stddev^2)
"Xavier": std 1/sqrt(n)                  ``lecun_normal()``      N(0, 1/fan_in)
std sqrt(2/n), for ReLU                  ``he_normal()``         N(0, 2/fan_in)
U[-1/sqrt(n), 1/sqrt(n)]                 ``fan_in_uniform()``    U[-1/sqrt(fan_in), +]
(Glorot & Bengio 2010, the real Xavier)  ``glorot_normal()``     N(0, 2/(fan_in+fan_out))
                                         ``glorot_uniform()``    U[+-sqrt(6/(fan_in+fan_out))]
                                         ``lecun_uniform()``     U[+-sqrt(3/fan_in)]
                                         ``he_uniform()``        U[+-sqrt(6/fan_in)]
=======================================  =====================  ==========================

The chapter's "Xavier" (standard deviation ``1/sqrt(n)`` over the fan-in) is what
the literature calls LeCun initialisation; Glorot's ("Xavier") own rule averages the
fan-in and fan-out. ``xavier_normal``/``xavier_uniform`` are aliases of the Glorot ones.
The normal initializers here are plain (not truncated) normals, so their standard
deviation is exactly the formula's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxnet.types import Array, check_key

Initializer = Callable[..., jax.Array]


def _check_shape(where: str, shape) -> tuple:
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise TypeError(f"{where}: shape must be a sequence of ints, got {shape!r}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"{where}: shape must have non-negative sizes, got {shape}")
    return shape


def fans(shape: Sequence[int]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight shape.

    ``(n_in, n_out)`` gives ``(n_in, n_out)``; an N-d HWIO kernel ``(*kernel, c_in, c_out)`` gives
    ``(prod(kernel) * c_in, prod(kernel) * c_out)`` (the receptive field counts); a 1-d shape
    ``(n,)`` has fan_in = fan_out = n.
    """
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2]))
    return receptive * int(shape[-2]), receptive * int(shape[-1])


def zeros(key: Array, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> Array:
    """All zeros. Fine for biases; for weights it leaves every unit identical (§4.3.2)."""
    del key
    return jnp.zeros(_check_shape("zeros", shape), dtype)


def ones(key: Array, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> Array:
    """All ones (e.g. the scale of a normalisation layer)."""
    del key
    return jnp.ones(_check_shape("ones", shape), dtype)


def constant(value: float) -> Initializer:
    """Every entry equal to ``value``."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"constant: value must be finite, got {value!r}")

    def init(key, shape, dtype=jnp.float32):
        del key
        return jnp.full(_check_shape("constant", shape), value, dtype)

    return init


def normal(stddev: float = 0.01) -> Initializer:
    """``N(0, stddev^2)``; the chapter suggests ``stddev`` 0.01 or 0.1."""
    stddev = float(stddev)
    if not math.isfinite(stddev) or stddev < 0:
        raise ValueError(f"normal: stddev must be finite and >= 0, got {stddev!r}")

    def init(key, shape, dtype=jnp.float32):
        check_key("normal", key)
        return stddev * jax.random.normal(key, _check_shape("normal", shape), dtype)

    return init


def uniform(limit: float = 0.05) -> Initializer:
    """``U[-limit, limit]``."""
    limit = float(limit)
    if not math.isfinite(limit) or limit < 0:
        raise ValueError(f"uniform: limit must be finite and >= 0, got {limit!r}")

    def init(key, shape, dtype=jnp.float32):
        check_key("uniform", key)
        return jax.random.uniform(key, _check_shape("uniform", shape), dtype, -limit, limit)

    return init


def variance_scaling(scale: float, mode: str, distribution: str) -> Initializer:
    """The general rule behind the named initializers: variance ``scale / n``.

    ``n`` is the fan-in (``mode="fan_in"``), fan-out, or their average
    (``"fan_avg"``). ``distribution="normal"`` samples ``N(0, scale/n)``;
    ``"uniform"`` samples ``U[-sqrt(3 scale/n), sqrt(3 scale/n)]`` (same variance).
    """
    if mode not in ("fan_in", "fan_out", "fan_avg"):
        raise ValueError(f"variance_scaling: mode must be 'fan_in', 'fan_out' or 'fan_avg', got {mode!r}")
    if distribution not in ("normal", "uniform"):
        raise ValueError(f"variance_scaling: distribution must be 'normal' or 'uniform', got {distribution!r}")
    if not scale > 0:
        raise ValueError(f"variance_scaling: scale must be > 0, got {scale!r}")

    def init(key, shape, dtype=jnp.float32):
        check_key("variance_scaling", key)
        shape = _check_shape("variance_scaling", shape)
        fan_in, fan_out = fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        var = scale / max(n, 1)
        if distribution == "normal":
            return math.sqrt(var) * jax.random.normal(key, shape, dtype)
        limit = math.sqrt(3.0 * var)
        return jax.random.uniform(key, shape, dtype, -limit, limit)

    return init


def lecun_normal() -> Initializer:
    """``N(0, 1/fan_in)``: the chapter's "Xavier" rule (std ``1/sqrt(n)``)."""
    return variance_scaling(1.0, "fan_in", "normal")


def lecun_uniform() -> Initializer:
    """``U[-sqrt(3/fan_in), sqrt(3/fan_in)]`` (variance ``1/fan_in``)."""
    return variance_scaling(1.0, "fan_in", "uniform")


def he_normal() -> Initializer:
    """``N(0, 2/fan_in)`` (He et al. 2015, "Kaiming"): the chapter's rule for ReLU."""
    return variance_scaling(2.0, "fan_in", "normal")


def he_uniform() -> Initializer:
    """``U[-sqrt(6/fan_in), sqrt(6/fan_in)]`` (variance ``2/fan_in``)."""
    return variance_scaling(2.0, "fan_in", "uniform")


def glorot_normal() -> Initializer:
    """``N(0, 2/(fan_in + fan_out))`` (Glorot & Bengio 2010, "Xavier normal")."""
    return variance_scaling(1.0, "fan_avg", "normal")


def glorot_uniform() -> Initializer:
    """``U[-sqrt(6/(fan_in+fan_out)), +]`` (Glorot & Bengio 2010, "Xavier uniform")."""
    return variance_scaling(1.0, "fan_avg", "uniform")


def fan_in_uniform() -> Initializer:
    """``U[-1/sqrt(fan_in), 1/sqrt(fan_in)]``: the chapter's uniform rule (also PyTorch's Linear default)."""
    return variance_scaling(1.0 / 3.0, "fan_in", "uniform")


xavier_normal = glorot_normal
xavier_uniform = glorot_uniform
kaiming_normal = he_normal
kaiming_uniform = he_uniform

_NAMED = {
    "zeros": lambda: zeros,
    "ones": lambda: ones,
    "lecun_normal": lecun_normal,
    "lecun_uniform": lecun_uniform,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "kaiming_normal": he_normal,
    "kaiming_uniform": he_uniform,
    "glorot_normal": glorot_normal,
    "glorot_uniform": glorot_uniform,
    "xavier_normal": glorot_normal,
    "xavier_uniform": glorot_uniform,
    "fan_in_uniform": fan_in_uniform,
}


def get(init: str | Initializer, *, where: str = "initializer") -> Initializer:
    """Resolve an initializer given as a callable or by name (``"he_normal"``)."""
    if callable(init):
        return init
    if isinstance(init, str):
        try:
            return _NAMED[init]()
        except KeyError:
            raise ValueError(
                f"{where}: unknown initializer {init!r}; expected one of {sorted(_NAMED)} or a callable"
            ) from None
    raise TypeError(f"{where}: initializer must be a callable or a name, got {type(init).__name__}")
