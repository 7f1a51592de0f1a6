"""A jaxnet CNN training step against a hand-written ``lax.conv`` step of the same network, in ONE process.

Both variants (see ``_cnn.py``: two Conv-BatchNorm-ReLU-MaxPool blocks and a Dense layer on 8x8x1
images, Adam) are built on the same device batches, compiled and warmed up, then timed in
rounds with the order reshuffled every round, as ``step_overhead.py`` does for the MLP. The
table gives ms/step and the per-round speed ratio ``raw / jaxnet`` (1.0: the same cost; the
target is >= 0.97), plus what XLA compiled for each (fusions, bytes accessed): equal programs
with unequal times point at the host side, unequal programs at the library's math.

Usage::

    python benchmarks/cnn_step.py --rounds 15
    python benchmarks/cnn_step.py --batch 256 --steps 16 --rounds 9
"""

from __future__ import annotations

import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # the benchmark helpers, and jaxnet from this checkout
import _common as C  # noqa: E402

NAMES = {"raw-lax-conv-step": "raw-jax-step", "jaxnet-cnn-step": "jaxnet-step"}


def build(cfg, steps, dtype, x, y):
    """``name -> run()`` for both variants, and their compiled steps for inspection."""
    import _cnn
    import jax

    from jaxnet.optim import adam
    from jaxnet.train import make_train_step

    runs = {name: _cnn.CNN_VARIANTS[v](cfg, steps, dtype, x, y) for name, v in NAMES.items()}
    batch = _cnn.image_batches(cfg, 1, dtype, x[: cfg.batch], y[: cfg.batch])[0]
    params, state = _cnn.raw_cnn_init(jax.random.PRNGKey(0), dtype)
    zeros = jax.tree_util.tree_map(lambda a: a * 0, params)
    opt = (jax.numpy.zeros([], jax.numpy.int32), zeros, zeros)
    compiled = {"raw-lax-conv-step": jax.jit(_cnn.raw_cnn_step).lower(params, state, opt, *batch).compile()}
    model, optimizer = _cnn.jaxnet_cnn(), adam(_cnn.LR)
    _, p, s = model.init(jax.random.PRNGKey(0), (-1, _cnn.SIDE, _cnn.SIDE, 1))
    step = make_train_step(model, _cnn.JAXNET_LOSS, optimizer)
    compiled["jaxnet-cnn-step"] = step.lower(p, s, optimizer.init(p), batch, None).compile()
    return runs, compiled


def program_stats(compiled) -> dict:
    """Fusions, convolutions and bytes accessed of a compiled step."""
    text = compiled.as_text()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return {
        "fusions": text.count(" fusion("),
        "convolutions": text.count(" convolution("),
        "bytes": float((cost or {}).get("bytes accessed", float("nan"))),
    }


def main() -> None:
    p = C.driver_parser(__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64, help="images per step (default 64)")
    p.add_argument("--steps", type=int, default=None, help="steps per timed call (default: the cnn config's)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    args = p.parse_args()
    import jax
    import jax.numpy as jnp

    profile = args.profile or ("gpu" if jax.default_backend() == "gpu" else "cpu")
    C.jax_setup(args.dtype)
    dtype = jnp.dtype(args.dtype)
    base = C.get_config("cnn", profile)
    cfg = C.Config("cnn", base.sizes, 4 if args.smoke else args.batch, base.macs)
    steps = 2 if args.smoke else (args.steps or C.steps_for(base, profile))
    rounds = 1 if args.smoke else max(args.rounds, 1)
    x, y = C.make_data(cfg, steps)
    runs, compiled = build(cfg, steps, dtype, x, y)
    for run in runs.values():  # compile and warm up
        run()
        run()
    rng = random.Random(args.seed)
    times = {k: [] for k in runs}
    for _ in range(rounds):
        for k in rng.sample(sorted(runs), len(runs)):
            t0 = time.perf_counter()
            runs[k]()
            times[k].append((time.perf_counter() - t0) / steps)
    stats = {k: program_stats(c) for k, c in compiled.items()}
    ref = times["raw-lax-conv-step"]
    rows = []
    for k, ts in times.items():
        prog = stats[k]
        rows.append(
            [
                k,
                C.fmt(C.summary([t * 1e3 for t in ts]), ".3g"),
                f"{min(ts) * 1e3:.3g}",
                C.fmt(C.summary([a / b for a, b in zip(ref, ts, strict=True)]), ".3f"),
                f"{prog['fusions']} / {prog['convolutions']} / {prog['bytes']:.3g}",
            ]
        )
    table = C.markdown_table(
        [
            "variant",
            "ms/step median [range]",
            "fastest ms/step",
            "x raw-lax-conv-step (speed, per round)",
            "compiled: fusions / convolutions / bytes",
        ],
        rows,
    )
    md = (
        C.header(f"CNN step, one process ({args.dtype}, {profile})", sys.argv)
        + f"\n#### cnn (batch {cfg.batch}, 8x8x1 images), {rounds} rounds x {steps} steps\n\n"
        + table
    )
    C.write_outputs(args, {"cnn": {"times": times, "programs": stats}}, md)


if __name__ == "__main__":
    main()
