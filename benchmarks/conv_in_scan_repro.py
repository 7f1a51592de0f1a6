"""Stand-alone reproduction of the slow convolution gradients inside ``lax.scan`` on XLA:CPU (JAX issue 12868).

Needs only ``jax``. It times the kernel gradient of a 3x3, 32 -> 64 channels-last convolution
four ways, four gradients each:

* ``jit x4``: ``jax.grad`` of the plain convolution, one ``jax.jit`` call per gradient;
* ``scan of 4``: the same gradient as the body of a ``lax.scan`` over four batches;
* ``scan of 4, transposed operands``: inside the scan, the kernel gradient written as a
  channels-last convolution (``NHWC x HWIO -> NHWC``) of the explicitly transposed input
  ``[C, H, W, N]`` with the output gradient ``[H, W, N, F]``, then transposed back to ``HWIO``;
* ``scan of 4, custom_jvp``: inside the scan, ``jax.grad`` of a convolution whose tangent
  convolutions take their operands in the layouts that make ``jax.grad``'s transposes canonical
  (the rule ``jaxnet.nn.Conv`` uses on the CPU, written out here).

and prints, for each compiled program, the ``dim_labels`` of every convolution in the optimized
HLO: ``b0f_0io->b0f`` is XLA:CPU's fast layout, anything else is lowered to generic loops.

Run: ``python benchmarks/conv_in_scan_repro.py [--batch 32] [--side 14] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import re
import time
from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

NHWC = lax.ConvDimensionNumbers(lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1), out_spec=(0, 3, 1, 2))


def conv(x, w):
    return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=NHWC)


def loss(w, x):
    return jnp.sum(conv(x, w) ** 2)


def kernel_grad_transposed(w, x):
    """d loss / d w as one canonical convolution over transposed operands (SAME, stride 1, 3x3)."""
    g = 2 * conv(x, w)  # d loss / d y
    xt = jnp.transpose(x, (3, 1, 2, 0))  # [C, H, W, N]: batch = C, feature = N
    gt = jnp.transpose(g, (1, 2, 0, 3))  # [H, W, N, F]: an HWIO kernel with I = N, O = F
    dw = lax.conv_general_dilated(xt, gt, (1, 1), ((1, 1), (1, 1)), dimension_numbers=NHWC)  # [C, 3, 3, F]
    return jnp.transpose(dw, (1, 2, 0, 3))


@jax.custom_jvp
def conv_fast(x, w):
    return conv(x, w)


@conv_fast.defjvp
def _conv_fast_jvp(primals, tangents):
    x, w = primals
    xd, wd = tangents
    # Input-tangent term with the kernel stored [H, W, O, I]: its transpose reads it as HWIO.
    dn_a = lax.ConvDimensionNumbers(lhs_spec=(0, 3, 1, 2), rhs_spec=(2, 3, 0, 1), out_spec=(0, 3, 1, 2))
    ya = lax.conv_general_dilated(xd, jnp.swapaxes(w, 2, 3), (1, 1), "SAME", dimension_numbers=dn_a)
    # Kernel-tangent term with x stored [C, H, W, N], the kernel [I, H, W, O], the output [H, W, N, F].
    dn_b = lax.ConvDimensionNumbers(lhs_spec=(3, 0, 1, 2), rhs_spec=(3, 0, 1, 2), out_spec=(2, 3, 0, 1))
    xt, wdt = jnp.transpose(x, (3, 1, 2, 0)), jnp.transpose(wd, (2, 0, 1, 3))
    yb = jnp.transpose(lax.conv_general_dilated(xt, wdt, (1, 1), "SAME", dimension_numbers=dn_b), (2, 0, 1, 3))
    return conv(x, w), ya + yb


def loss_fast(w, x):
    return jnp.sum(conv_fast(x, w) ** 2)


def scan_of(grad_fn):
    @jax.jit
    def run(w, xs):
        def body(acc, x):
            return acc + grad_fn(w, x), None

        return lax.scan(body, jnp.zeros_like(w), xs)[0]

    return run


def dim_labels(compiled) -> list[str]:
    return re.findall(r"dim_labels=(\S+?)[,\s]", compiled.as_text())


def best_of(fn, repeats):
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--side", type=int, default=14)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    xs = jax.random.normal(k1, (a.steps, a.batch, a.side, a.side, 32))
    w = jax.random.normal(k2, (3, 3, 32, 64)) / 17.0
    step = jax.jit(jax.grad(loss))
    for name, f in [("transposed", kernel_grad_transposed), ("custom_jvp", jax.grad(loss_fast))]:
        err = float(jnp.max(jnp.abs(jax.jit(f)(w, xs[0]) - step(w, xs[0]))))
        print(f"check: {name} kernel gradient - jax.grad: max abs difference {err:.2e}")

    def jitted_calls():
        return [step(w, x) for x in xs]

    runs = {
        f"jit x{a.steps} (jax.grad)": (jitted_calls, step.lower(w, xs[0]).compile()),
    }
    for name, f in [("jax.grad", jax.grad(loss)), ("transposed operands", kernel_grad_transposed),
                    ("custom_jvp", jax.grad(loss_fast))]:  # fmt: skip
        run = scan_of(f)
        runs[f"scan of {a.steps} ({name})"] = (partial(run, w, xs), run.lower(w, xs).compile())
    print(f"jax {jax.__version__} on {jax.default_backend()}; x [{a.batch}, {a.side}, {a.side}, 32], w [3, 3, 32, 64]")
    base = None
    for name, (fn, compiled) in runs.items():
        t = best_of(fn, a.repeats)
        base = base or t
        print(f"{name:36s} {t * 1e3:9.1f} ms  ({base / t:5.2f}x)  dim_labels: {sorted(set(dim_labels(compiled)))}")


if __name__ == "__main__":
    main()
