"""Optimizer update overhead: jaxnet's jitted update against a hand-written jnp update of the same rule.

Both sides compute the same thing, one full step ``(params, grads, state) -> (params, state)``
on a pytree of about ``--size`` float32 parameters, each compiled with ``jax.jit``. The
hand-written side bakes the hyperparameters in as Python constants (the best one could write
by hand); jaxnet reads them from arrays in its state. The two are timed alternately in the
same process: each round times ``--inner`` consecutive calls of one side, then of the other
(the order alternates between rounds). The table gives the median time per call of each side,
the median of the per-round ratios (jaxnet / hand-written), the ratio of the fastest rounds,
and the memory traffic XLA's cost analysis expects for each compiled step (noise-free: an
update that reads or writes more than the hand-written one shows up here).

    python benchmarks/optimizers.py                # ~10M parameters, 30 rounds of 5 calls
    python benchmarks/optimizers.py --size 100000 --repeats 5    # a quick smoke run
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import jaxnet.optim as O

LR, MU, B1, B2, EPS, ALPHA, WD = 1e-3, 0.9, 0.9, 0.999, 1e-8, 0.99, 1e-2


def make_tree(size: int, key):
    """An MLP-shaped pytree of about ``size`` parameters (two big matrices, biases, a small head)."""
    n = max(int((size / 2.5) ** 0.5), 4)
    shapes = {
        "dense_0": {"w": (n, n), "b": (n,)},
        "dense_1": {"w": (n, int(1.5 * n)), "b": (int(1.5 * n),)},
        "dense_2": {"w": (int(1.5 * n), 10), "b": (10,)},
    }
    leaves, treedef = jax.tree_util.tree_flatten(shapes, is_leaf=lambda s: isinstance(s, tuple))
    keys = jax.random.split(key, len(leaves))
    return treedef.unflatten([jax.random.normal(k, s, jnp.float32) for k, s in zip(keys, leaves, strict=True)])


def tmap(fn, *trees):
    return jax.tree_util.tree_map(fn, *trees)


def unzip(tree_of_tuples, like, n):
    treedef = jax.tree_util.tree_structure(like)
    flat = treedef.flatten_up_to(tree_of_tuples)
    return tuple(treedef.unflatten([f[i] for f in flat]) for i in range(n))


# ---- hand-written steps: (params, grads, state) -> (params, state), constants baked in ----


def hand_sgd(p, g, s):
    return tmap(lambda p, g: p - LR * g, p, g), s


def hand_momentum(p, g, s, nesterov=False):
    count, b = s
    first = count == 0

    def leaf(p, g, b):
        b = jnp.where(first, g, MU * b + g)
        return p - LR * (g + MU * b if nesterov else b), b

    p, b = unzip(tmap(leaf, p, g, b), p, 2)
    return p, (count + 1, b)


def hand_adagrad(p, g, s):
    def leaf(p, g, acc):
        acc = acc + g * g
        return p - LR * g / (jnp.sqrt(acc) + 1e-10), acc

    p, acc = unzip(tmap(leaf, p, g, s), p, 2)
    return p, acc


def hand_rmsprop(p, g, s):
    def leaf(p, g, v):
        v = ALPHA * v + (1 - ALPHA) * g * g
        return p - LR * g / (jnp.sqrt(v) + EPS), v

    p, v = unzip(tmap(leaf, p, g, s), p, 2)
    return p, v


def hand_adam(p, g, s, wd=0.0):
    count, m, v = s
    t = (count + 1).astype(jnp.float32)
    step = LR / (1 - B1**t)
    bc2 = jnp.sqrt(1 - B2**t)

    def leaf(p, g, m, v):
        m = B1 * m + (1 - B1) * g
        v = B2 * v + (1 - B2) * g * g
        p = p * (1 - LR * wd) if wd else p
        return p - step * m / (jnp.sqrt(v) / bc2 + EPS), m, v

    p, m, v = unzip(tmap(leaf, p, g, m, v), p, 3)
    return p, (count + 1, m, v)


def zeros(tree):
    return tmap(jnp.zeros_like, tree)


CASES = {
    # name: (jaxnet optimizer, hand-written step, hand-written initial state)
    "sgd": (O.sgd(LR), hand_sgd, lambda p: ()),
    "sgd momentum": (O.sgd(LR, momentum=MU), hand_momentum, lambda p: (jnp.zeros([], jnp.int32), zeros(p))),
    "sgd nesterov": (
        O.sgd(LR, momentum=MU, nesterov=True),
        lambda p, g, s: hand_momentum(p, g, s, True),
        lambda p: (jnp.zeros([], jnp.int32), zeros(p)),
    ),
    "adagrad": (O.adagrad(LR), hand_adagrad, zeros),
    "rmsprop": (O.rmsprop(LR, alpha=ALPHA, eps=EPS), hand_rmsprop, zeros),
    "adam": (O.adam(LR, B1, B2, EPS), hand_adam, lambda p: (jnp.zeros([], jnp.int32), zeros(p), zeros(p))),
    "adamw": (
        O.adamw(LR, B1, B2, EPS, weight_decay=WD),
        lambda p, g, s: hand_adam(p, g, s, WD),
        lambda p: (jnp.zeros([], jnp.int32), zeros(p), zeros(p)),
    ),
}


def library_step(opt):
    def step(p, g, s):
        u, s = opt.update(g, s, p)
        return O.apply_updates(p, u), s

    return step


def timed(fn, args, inner):
    """Seconds per call, over ``inner`` consecutive calls."""
    t0 = time.perf_counter()
    for _ in range(inner):
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / inner


def bytes_accessed(jitted, args) -> float:
    cost = jitted.lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("bytes accessed", float("nan")))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=10_000_000, help="parameters in the pytree (default 10M)")
    ap.add_argument("--repeats", type=int, default=30, help="timed rounds per optimizer (default 30)")
    ap.add_argument("--inner", type=int, default=5, help="calls per side in each round (default 5)")
    ap.add_argument("--only", nargs="*", default=None, help="optimizer names to run")
    args = ap.parse_args(argv)

    params = make_tree(args.size, jax.random.PRNGKey(0))
    grads = make_tree(args.size, jax.random.PRNGKey(1))
    n = sum(x.size for x in jax.tree_util.tree_leaves(params))
    print(
        f"# optimizer update overhead: {n:,} float32 parameters, jax {jax.__version__}, "
        f"{jax.devices()[0].platform}, {datetime.date.today()}, {args.repeats} rounds x {args.inner} calls"
    )
    print(
        "| optimizer | jaxnet (ms) | hand-written (ms) | ratio, median of rounds [range] | ratio of fastest rounds "
        "| bytes accessed, jaxnet / hand |"
    )
    print("|---|---|---|---|---|---|")
    for name, (opt, hand, hand_init) in CASES.items():
        if args.only and name not in args.only:
            continue
        lib, ref = jax.jit(library_step(opt)), jax.jit(hand)
        lib_args, ref_args = (params, grads, opt.init(params)), (params, grads, hand_init(params))
        traffic = bytes_accessed(lib, lib_args) / bytes_accessed(ref, ref_args)
        timed(lib, lib_args, 2), timed(ref, ref_args, 2)  # compile and warm up both
        t_lib, t_ref, ratios = [], [], []
        for r in range(args.repeats):
            if r % 2:
                a, b = timed(lib, lib_args, args.inner), timed(ref, ref_args, args.inner)
            else:
                b, a = timed(ref, ref_args, args.inner), timed(lib, lib_args, args.inner)
            t_lib.append(a), t_ref.append(b), ratios.append(a / b)
        print(
            f"| {name} | {1e3 * statistics.median(t_lib):.2f} | {1e3 * statistics.median(t_ref):.2f} | "
            f"{statistics.median(ratios):.3f} [{min(ratios):.2f}, {max(ratios):.2f}] | "
            f"{min(t_lib) / min(t_ref):.3f} | {traffic:.4f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
