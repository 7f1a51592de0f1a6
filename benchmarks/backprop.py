"""Handwritten backprop vs ``jax.grad``: time per gradient of an MLP, both compiled with ``jax.jit``.

The model is ``MLP([512, 512, 10])`` with ReLU on 784 inputs (MNIST-sized), batch 256, float32,
loss ``softmax_cross_entropy_with_integer_labels``. Each round times both functions, in an
order that alternates between rounds, so that drift in the machine's speed hits both alike;
the table reports median times and the median of the per-round ratios.

Usage::

    python benchmarks/backprop.py                 # 7 rounds, prints a Markdown table
    python benchmarks/backprop.py --rounds 3 --batch 64 --sizes 784,128,10
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

import jax

from jaxnet import nn
from jaxnet.autodiff import backprop, relative_error
from jaxnet.nn import losses


def _time(fn, args, repeats: int) -> float:
    """Median seconds per call over ``repeats`` calls (results waited for)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="784,512,512,10", help="input width, hidden widths, output width")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--repeats", type=int, default=20, help="calls per function per round")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]

    model = nn.MLP(sizes[1:], activation="relu")
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, sizes[0]))
    x = jax.random.normal(jax.random.PRNGKey(1), (args.batch, sizes[0]))
    y = jax.random.randint(jax.random.PRNGKey(2), (args.batch,), 0, sizes[-1])
    loss = losses.softmax_cross_entropy_with_integer_labels

    @jax.jit
    def handwritten(p, x, y):
        return backprop(model, p, state, x, y, loss)[1]

    @jax.jit
    def autodiff(p, x, y):
        return jax.grad(lambda q: loss(model.apply(q, state, x, train=True)[0], y))(p)

    a, b = handwritten(params, x, y), autodiff(params, x, y)  # compile both, and check they agree
    err = max(
        relative_error(u, v) for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
    )

    hw, ad, ratio = [], [], []
    for r in range(args.rounds):
        order = [("hw", handwritten), ("ad", autodiff)][:: 1 if r % 2 == 0 else -1]
        t = {name: _time(fn, (params, x, y), args.repeats) for name, fn in order}
        hw.append(t["hw"])
        ad.append(t["ad"])
        ratio.append(t["hw"] / t["ad"])

    def ms(v):
        return f"{1e3 * statistics.median(v):.2f} ms"

    command = "python benchmarks/backprop.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(
        f"date: {datetime.date.today().isoformat()}; command: `{command.strip()}`; "
        f"jax {jax.__version__}, {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs ({platform.machine()}), backend {jax.default_backend()}"
    )
    print(
        f"model MLP {'-'.join(map(str, sizes))} relu, batch {args.batch}, float32, "
        f"{args.rounds} rounds x {args.repeats} calls; max relative difference of the gradients {err:.1e}\n"
    )
    print("| gradient | median time | ratio to jax.grad (median, range over rounds) |")
    print("|---|---:|---:|")
    print(f"| `jax.grad` (jit) | {ms(ad)} | 1 |")
    print(
        f"| handwritten backprop (jit) | {ms(hw)} | {statistics.median(ratio):.3f} "
        f"({min(ratio):.3f}-{max(ratio):.3f}) |"
    )


if __name__ == "__main__":
    main()
