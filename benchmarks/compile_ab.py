"""Compile time of jaxnet's epoch against the hand-written pre-cut scan, in one process.

For one MLP config this compiles, three times each with fresh programs (a changed constant), the
hand-written ``lax.scan`` over pre-cut batches and :func:`jaxnet.train.make_train_epoch`
(lower + compile), and times a whole ``fit(epochs=1)`` call on a fresh program (set-up, trace,
compile and one epoch); it prints the medians and their ratios to the raw scan's compile. To
compare two versions of jaxnet, run it alternately with ``PYTHONPATH`` set to each checkout
(this machine's speed drifts between processes, so alternate and repeat).

Usage::

    python benchmarks/compile_ab.py [--config overhead] [--label now]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="overhead")
    p.add_argument("--label", default="", help="a name printed with the result line")
    args = p.parse_args()

    import _variants as V
    import jax
    import jax.numpy as jnp

    import jaxnet as jn

    S = V.epoch_setup(args.config)
    cfg, b, x, y, xs, ys = S.cfg, S.b, S.x, S.y, S.xs, S.ys
    rp, ro, model, params, state = S.rp, S.ro, S.model, S.params, S.state
    jax.jit(lambda a: a + 1)(jnp.ones(3)).block_until_ready()  # first-compile costs out of the way
    res: dict = {"raw": [], "epoch": [], "fit": []}
    for r in range(3):
        salt = (r + 1) * 1e-3  # a new constant: a new program, compiled afresh

        def raw(p_, o_, a, c, salt=salt):
            return V.raw_epoch_precut(p_, o_, a * (1 + salt), c)

        t = time.perf_counter()
        jax.jit(raw).lower(rp, ro, xs, ys).compile()
        res["raw"].append(time.perf_counter() - t)

        adam = jn.adam(V.LR * (1 + salt))

        def penalty(p_, salt=salt):
            return salt * 0.0

        epoch = jn.train.make_train_epoch(model, V.JAXNET_LOSS, adam, batch_size=b, n=x.shape[0], penalty=penalty)
        t = time.perf_counter()
        epoch.lower(params, state, adam.init(params), (x, y), jax.random.PRNGKey(0)).compile()
        res["epoch"].append(time.perf_counter() - t)

        t = time.perf_counter()
        init = (params, state, adam.init(params))
        out = V.fit_one_epoch(model, adam, (x, y), b, jax.random.PRNGKey(0), init, penalty=penalty)
        jax.block_until_ready(out.params)
        res["fit"].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in res.items()}
    print(
        f"{args.label} {cfg.name}: raw scan compile {med['raw']:.3f} s, make_train_epoch compile "
        f"{med['epoch']:.3f} s ({med['epoch'] / med['raw']:.2f}x), fit(epochs=1) call {med['fit']:.3f} s "
        f"({med['fit'] / med['raw']:.2f}x); jax {jax.__version__}"
    )


if __name__ == "__main__":
    main()
