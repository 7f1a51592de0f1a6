"""What XLA:CPU compile time is made of: a cost per generated kernel, and jax's threefry loop.

Two measurements, each compiled fresh three times in one process (after a warm-up compile of an
unrelated tiny program), median seconds:

- ``kernels``: programs made of N chained reductions ``acc = sum(sin(x * acc + i))`` over 1,000
  floats, N = 5, 20, 40. Each reduction depends on the one before, so XLA cannot fuse them: the
  program holds N kernels, and the slopes are the compile cost of one small kernel (they grow a
  little with N).
- ``threefry``: 8,194 random 32-bit words from ``jax.random.bits`` (on the CPU jax lowers the
  threefry hash as a loop of 5 iterations) and from ``jaxnet._threefry.bits`` (the same hash
  written out, the same bits): compile time, and run time per call over interleaved calls.

This is why a compiled epoch's compile time follows its number of fusions (see
``benchmarks/epoch_anatomy.py``) rather than its number of HLO ops.

Usage::

    python benchmarks/compile_cost.py
"""

from __future__ import annotations

import statistics
import time


def _compile_s(make, arg, reps: int = 3) -> float:
    """Median seconds to lower and compile ``make(salt)`` (a fresh jitted function per salt) on ``arg``."""
    times = []
    for r in range(reps):
        f = make(1.0 + r)
        t = time.perf_counter()
        f.lower(arg).compile()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    import jax
    import jax.numpy as jnp

    from jaxnet import _threefry

    jax.jit(lambda a: a + 1)(jnp.ones(3)).block_until_ready()  # first-compile costs out of the way
    x = jnp.ones((1000,), jnp.float32)

    def chain(n):
        def make(salt):
            def f(x):
                acc = jnp.float32(salt)
                for i in range(n):
                    acc = jnp.sum(jnp.sin(x * acc + i))
                return acc

            return jax.jit(f)

        return make

    print(f"jax {jax.__version__}, backend {jax.default_backend()}")
    print("kernels: N chained reductions, compile s")
    got = {n: _compile_s(chain(n), x) for n in (5, 20, 40)}
    for n, s in got.items():
        print(f"  N = {n:2d}: {s:.3f} s")
    print(
        f"  per kernel: {1e3 * (got[20] - got[5]) / 15:.1f} ms (N 5 -> 20), {1e3 * (got[40] - got[20]) / 20:.1f} ms "
        f"(N 20 -> 40)"
    )

    n = 8194
    fns = {
        "jax.random.bits": lambda k: jax.random.bits(k, (n,), jnp.uint32),
        "jaxnet._threefry.bits": lambda k: _threefry.bits(k, (n,)),
    }
    key = jax.random.PRNGKey(0)
    print(f"threefry: {n} words")
    runs = {}
    for name, fn in fns.items():
        c = _compile_s(lambda salt, fn=fn: jax.jit(lambda k: fn(k) ^ jnp.uint32(int(salt))), key)
        runs[name] = (jax.jit(fn), c)
    keys = [jax.random.PRNGKey(i) for i in range(300)]
    for f, _ in runs.values():
        f(key).block_until_ready()
    times: dict = {name: [] for name in runs}
    for k in keys:
        for name, (f, _) in runs.items():
            t = time.perf_counter()
            f(k).block_until_ready()
            times[name].append(time.perf_counter() - t)
    same = bool((runs["jax.random.bits"][0](key) == runs["jaxnet._threefry.bits"][0](key)).all())
    for name, (_, c) in runs.items():
        print(f"  {name:22s} compile {c:.3f} s   run {1e3 * statistics.median(times[name]):.3f} ms/call")
    print(f"  equal bits: {same}")


if __name__ == "__main__":
    main()
