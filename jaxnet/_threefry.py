"""``jax.random``'s ``split``, ``fold_in`` and 32-bit ``bits`` for one threefry key, bit for bit, unrolled.

jax computes these with the threefry-2x32 hash (Salmon et al., "Parallel random numbers: as easy
as 1, 2, 3", SC 2011: 20 rounds of add, rotate and xor on pairs of 32-bit words, with the key
injected every 4 rounds). On GPUs and TPUs jax emits the 20 rounds unrolled; on the CPU it
emits them as a loop of 5 iterations (``jax._src.random.threefry2x32``, ``use_rolled_loops``),
which XLA compiles into a while loop of several small kernels. A compiled epoch derives its
keys and its shuffle's random words with three such calls, so on the CPU each costs a loop
to run and about 0.1 s to compile. Here the same rounds are written out with array operators:
XLA fuses them into one elementwise kernel, and unused results (a step key no layer consumes)
are removed as dead code. 8,194 random 32-bit words: 0.09 ms against 0.26 ms per call, 0.12 s
against 0.25 s to compile (``benchmarks/compile_cost.py``, 2-core Intel Xeon CPU, jax 0.10.2).
``Sequential``'s per-layer keys and ``Dropout``'s mask (:func:`bernoulli`) use it too. Each device-side
function is jitted, so a call outside ``jit`` is one dispatch (an eager ``fold_in``: 0.09 ms, jax's 0.28 ms).

The results equal ``jax.random``'s exactly, for the keys and settings where this applies:
a scalar threefry key (a raw ``uint32[2]`` key under the default ``threefry2x32``
implementation, or a typed ``key<fry>``); for ``split`` and ``bits`` also
``jax_threefry_partitionable`` on (the default of the jax versions jaxnet is tested with; with
it off they draw other bits, and are handed to ``jax.random``). Every other key (``rbg``,
``unsafe_rbg``, custom implementations, arrays of keys) is handed to ``jax.random`` itself.
``tests/test_threefry.py`` compares the two for raw and typed keys, under ``jit`` and ``vmap``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxnet.types import Array

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = 0x1BD11BDA  # the key schedule's constant (Threefish)


Words = Any  # uint32 words: a jax array (traced or not) or a NumPy array


def _rotate_left(v: Words, d: int) -> Words:
    return (v << np.uint32(d)) | (v >> np.uint32(32 - d))


def threefry2x32(k1: Words, k2: Words, x1: Words, x2: Words) -> tuple[Words, Words]:
    """The threefry-2x32 hash of the counter pairs ``(x1, x2)`` (uint32, broadcast) under key ``(k1, k2)``.

    Written with operators and NumPy constants only, so it runs on jax arrays (traced or not)
    and on NumPy arrays (on the host, nothing to compile) alike; uint32 arithmetic wraps.
    """
    ks = (k1, k2, k1 ^ k2 ^ np.uint32(_PARITY))
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for j in range(5):
        for r in _ROTATIONS[j % 2]:
            x1 = x1 + x2
            x2 = _rotate_left(x2, r) ^ x1
        x1 = x1 + ks[(j + 1) % 3]
        x2 = x2 + ks[(j + 2) % 3] + np.uint32(j + 1)
    return x1, x2


def _words(key: Array, *, partitionable: bool = True) -> Array | None:
    """The two uint32 words of a key this module computes for, else ``None`` (use ``jax.random``).

    ``partitionable``: the result depends on ``jax_threefry_partitionable`` (``split`` and ``bits``
    do; ``fold_in`` hashes the same way in both modes) and is computed only when it is on.
    """
    if partitionable and not jax.config.jax_threefry_partitionable:  # type: ignore[attr-defined]
        return None
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != () or str(jax.random.key_impl(key)) != "threefry2x32":
            return None
        return jax.random.key_data(key)
    default_impl = jax.config.jax_default_prng_impl  # type: ignore[attr-defined]
    if key.shape != (2,) or key.dtype != jnp.uint32 or default_impl != "threefry2x32":
        return None
    return key


def _like(key: Array, words: Array) -> Array:
    """``words`` (uint32 [..., 2]) as keys of ``key``'s kind: typed keys stay typed."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(words, impl=jax.random.key_impl(key))
    return words


# The hash on the device, jitted: called outside jit it is one dispatch (not one per operation, which
# made an eager call ten times slower than jax.random's); inside a jitted program it is inlined.
@jax.jit
def _fold_in_words(w: Array, data: Array) -> Array:
    b1, b2 = threefry2x32(w[0], w[1], jnp.uint32(0), data)
    return jnp.stack([b1, b2])


@functools.partial(jax.jit, static_argnums=1)
def _split_words(w: Array, num: int) -> Array:
    b1, b2 = threefry2x32(w[0], w[1], jnp.zeros((num,), jnp.uint32), lax.iota(jnp.uint32, num))
    return jnp.stack([b1, b2], axis=1)


@functools.partial(jax.jit, static_argnums=1)
def _bits_words(w: Array, shape: tuple[int, ...]) -> Array:
    size = math.prod(shape)
    b1, b2 = threefry2x32(w[0], w[1], jnp.zeros((size,), jnp.uint32), lax.iota(jnp.uint32, size))
    return (b1 ^ b2).reshape(shape)


def fold_in(key: Array, data: int | Array) -> Array:
    """``jax.random.fold_in(key, data)`` for an integer scalar ``data`` (converted to uint32 as jax does)."""
    w = _words(key, partitionable=False)
    if w is None or np.ndim(data):  # jax.random raises its own TypeError for an array
        return jax.random.fold_in(key, data)
    return _like(key, _fold_in_words(w, jnp.asarray(data, dtype=jnp.uint32)))  # converted as jax converts it


def split(key: Array, num: int | tuple[int, ...] = 2) -> Array:
    """``jax.random.split(key, num)``: ``num`` new keys, stacked on a leading axis (a shape ``num``: jax's)."""
    w = _words(key)
    if w is None or not isinstance(num, int) or isinstance(num, bool):
        return jax.random.split(key, num)
    return _like(key, _split_words(w, num))


def bits(key: Array, shape: int | tuple[int, ...]) -> Array:
    """``jax.random.bits(key, shape, jnp.uint32)``: uniform random uint32 words."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    w = _words(key)
    if w is None or math.prod(shape) >= 2**32:
        return jax.random.bits(key, shape, jnp.uint32)
    return _bits_words(w, shape)


def fold_in_host(key: Array, count: int) -> list[Array]:
    """``[jax.random.fold_in(key, i) for i in range(count)]`` for a concrete key, hashed on the host.

    The hash runs in NumPy: no program is compiled for it (a jitted ``fold_in`` compiles in
    about 0.1 s, once per process), and the keys go to the device as they are. Keys this
    module does not compute for are handed to ``jax.random.fold_in``.
    """
    w = _words(key, partitionable=False)
    if w is None:
        return [jax.random.fold_in(key, i) for i in range(count)]
    host = np.asarray(jax.device_get(w))
    b1, b2 = threefry2x32(host[0:1], host[1:2], np.zeros(count, np.uint32), np.arange(count, dtype=np.uint32))
    words = np.stack([b1, b2], axis=1)
    return [_like(key, jax.device_put(words[i])) for i in range(count)]


def bernoulli(key: Array, p: float, shape: tuple[int, ...]) -> Array:
    """``jax.random.bernoulli(key, p, shape)`` for a Python float ``p``: a bool array, True with probability ``p``.

    jax samples ``uniform(key, shape, float32) < float32(p)``, its uniform from the top 23 bits of
    each random word as a float32 mantissa in ``[1, 2)``, minus 1; so does this. With
    ``jax_enable_x64`` on, jax samples a Python float in float64: handed to ``jax.random``.
    """
    if jax.config.jax_enable_x64:  # type: ignore[attr-defined]
        return jax.random.bernoulli(key, p, tuple(shape))
    # bits() hands other keys to jax.random.bits, whose words jax's uniform uses too: equal either way
    return _below(bits(key, tuple(shape)), np.float32(p))


@jax.jit
def _below(words: Array, p: Array) -> Array:
    mantissa = (words >> np.uint32(9)) | np.uint32(0x3F800000)  # 1.0's exponent
    return lax.bitcast_convert_type(mantissa, jnp.float32) - np.float32(1.0) < p
