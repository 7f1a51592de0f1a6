"""jaxnet's compiled epoch against a hand-written scan over pre-cut batches, interleaved in ONE process.

On a loaded shared machine separate processes measured minutes apart disagree by 2x or more;
here the programs alternate call by call, so drift hits them alike. Programs: ``raw`` (the
hand-written Adam scan over the same pre-cut batches every epoch, no shuffle), ``jaxnet``
(``make_train_epoch``: shuffle, one gather, the steps, the non-finite guard, metrics), ``fit``
(``jaxnet.train.fit`` for one epoch per call, its Python set-up included),
``perm`` (jaxnet's shuffle alone) and ``perm+gather``; with ``--old FILE`` also the
``make_train_epoch`` of another copy of ``jaxnet/train/epoch.py`` (e.g. from ``git show``).

With ``--dropout RATE`` jaxnet's model has a dropout layer after each hidden layer (the raw scan
has none: the ratio then shows what the dropout masks cost).

Usage::

    python benchmarks/epoch_ab.py --config overhead --calls 20 [--old /tmp/old_epoch.py] [--dropout 0.2]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="overhead")
    p.add_argument("--calls", type=int, default=15)
    p.add_argument("--old", default=None, help="another epoch.py to compare (its make_train_epoch)")
    p.add_argument("--dropout", type=float, default=0.0, help="jaxnet's MLP with this dropout rate (raw has none)")
    args = p.parse_args()

    import _variants as V
    import jax
    import jax.numpy as jnp

    import jaxnet as jn
    from jaxnet.data import shuffle_batches

    S = V.epoch_setup(args.config)
    cfg, steps, b, n, x, y, xs, ys = S.cfg, S.steps, S.b, S.n, S.x, S.y, S.xs, S.ys
    rp, ro, model, params, state = S.rp, S.ro, S.model, S.params, S.state
    if args.dropout:  # a dropout layer after each hidden layer: each step draws its masks from its key
        model = jn.MLP(list(S.cfg.sizes[1:]), dropout=args.dropout)
        _, params, state = model.init(jax.random.PRNGKey(0), (-1, S.cfg.sizes[0]))
    raw = jax.jit(V.raw_epoch_precut)
    adam = jn.adam(V.LR)
    opt_state = adam.init(params)
    epoch = jn.train.make_train_epoch(model, V.JAXNET_LOSS, adam, batch_size=b, n=n)

    def fit_one(k):  # what a script calls: fit for one epoch, resumed from the given params
        return V.fit_one_epoch(model, adam, (x, y), b, k, (params, state, opt_state)).params

    progs = {
        "raw": lambda k: raw(rp, ro, xs, ys),
        "jaxnet": lambda k: epoch(params, state, opt_state, (x, y), k),
        "fit": fit_one,
        "perm": jax.jit(lambda k: shuffle_batches(k, n, b)),
        "perm+gather": jax.jit(lambda k: jnp.take(x, shuffle_batches(k, n, b)[0].reshape(-1), axis=0)),
    }
    if args.old:
        spec = importlib.util.spec_from_file_location("old_epoch", args.old)
        old = importlib.util.module_from_spec(spec)
        sys.modules["old_epoch"] = old
        spec.loader.exec_module(old)
        old_epoch = old.make_train_epoch(model, V.JAXNET_LOSS, adam, batch_size=b, n=n)
        progs["old"] = lambda k: old_epoch(params, state, opt_state, (x, y), k)
    first = {}
    for name, f in progs.items():
        t = time.perf_counter()
        jax.block_until_ready(f(jax.random.PRNGKey(0)))
        first[name] = time.perf_counter() - t
    times: dict = {k: [] for k in progs}
    for r in range(args.calls):
        for name, f in progs.items():
            key = jax.random.PRNGKey(r + 1)
            t = time.perf_counter()
            jax.block_until_ready(f(key))
            times[name].append(time.perf_counter() - t)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"config {cfg.label()}, {steps} steps per epoch, {args.calls} interleaved calls, load {load:.1f}")
    print(
        "raw = hand-written Adam scan over batches cut once (no shuffle); speed = raw time / this time "
        "(> 1: faster than raw); load = 1-minute load average"
    )
    for name, v in times.items():
        if name.startswith("perm"):  # parts of jaxnet's epoch, not epochs: their time as a share of raw's
            share = 100 * statistics.median(v) / statistics.median(times["raw"])
            print(f"{name:12s} {1e3 * statistics.median(v):8.3f} ms, {share:.1f} % of a raw epoch (inside jaxnet's)")
            continue
        ratio = statistics.median(a / c for a, c in zip(times["raw"], v, strict=True))
        ms = 1e3 * statistics.median(v)
        best = min(times["raw"]) / min(v)  # the fastest call of each: least touched by the machine's noise
        print(
            f"{name:12s} {ms:8.3f} ms/epoch  speed vs raw (per call) {ratio:.2f}  (fastest calls) {best:.2f}  "
            f"first call {first[name]:.2f} s"
        )


if __name__ == "__main__":
    main()
