"""jaxnet's sequence training step against the hand-written one in ONE process, timed alternately.

Separate processes (``sequence.py``) differ by a few per cent from process to process on this CPU, even
for programs XLA compiles identically; here both steps run on the same batches, in alternating order::

    python benchmarks/sequence_ab.py [--model lstm|transformer] [--rounds 8]

Prints each round's milliseconds and the ratio hand-written time / jaxnet time (> 1: jaxnet faster).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # the benchmark helpers, and jaxnet from this checkout
import _common as C  # noqa: E402
import _seq  # noqa: E402

VARIANTS = ("jaxnet-step", "raw-jax-step")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="lstm", choices=sorted(_seq.MODELS))
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--steps", type=int, default=8)
    args = p.parse_args()
    C.jax_setup("float32")
    cfg = _seq.MODELS[args.model]
    batches = _seq.make_batches(cfg, args.steps)
    runs = {v: _seq.build(v, args.model, cfg, batches, "float32")[0] for v in VARIANTS}
    for run in runs.values():  # compile and warm up
        run()
        run()
    ratios = []
    for i in range(args.rounds):
        took = {}
        for v in VARIANTS if i % 2 == 0 else VARIANTS[::-1]:
            start = time.perf_counter()
            runs[v]()
            took[v] = time.perf_counter() - start
        ratios.append(took["raw-jax-step"] / took["jaxnet-step"])
        ms = {v: f"{1e3 * t:.0f} ms" for v, t in took.items()}
        print(f"round {i}: jaxnet {ms['jaxnet-step']}, hand-written {ms['raw-jax-step']}, ratio {ratios[-1]:.3f}")
    print(
        f"{args.model}: hand-written / jaxnet median {statistics.median(ratios):.3f} "
        f"[{min(ratios):.3f}-{max(ratios):.3f}], load {os.getloadavg()[0]:.1f}, {C.versions()}"
    )


if __name__ == "__main__":
    main()
