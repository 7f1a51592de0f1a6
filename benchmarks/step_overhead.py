"""Per-call cost of a jaxnet training step against the hand-written one, in ONE process.

``throughput.py`` runs each variant in its own process, which keeps the variants from
disturbing each other but cannot resolve a few microseconds per call against the noise
between processes. This script builds, in one process and on the same batches:

* ``raw-jax-step``: the hand-written Adam step of ``throughput.py`` (hyperparameters baked in);
* ``raw+5-scalars``: the same step also taking and returning five scalar arrays, as many as
  jaxnet's Adam keeps its hyperparameters in (``learning_rate, b1, b2, eps, eps_root``);
* ``raw+1-vector``: the same five values as one array of shape ``(5,)``;
* ``jaxnet-step``: ``jaxnet.train.make_train_step`` with ``jaxnet.optim.adam``;

then times them in rounds, the order reshuffled each round, and reports the per-round ratio
to ``raw-jax-step``. It also prints what XLA compiled for the two real steps (fusions, bytes
accessed), which does not depend on noise: equal programs with unequal times point at the
host side (dispatch, buffers), unequal programs at the library's math.

Usage::

    python benchmarks/step_overhead.py --configs overhead,small --rounds 15
    python benchmarks/step_overhead.py --profile gpu --configs overhead,medium
"""

from __future__ import annotations

import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # the benchmark helpers, and jaxnet from this checkout
import _common as C  # noqa: E402

HYPER = (1e-3, 0.9, 0.999, 1e-8, 0.0)


def raw_step_carrying(p, o, h, x, y):
    """The hand-written step, also taking ``h`` (extra buffers) and handing it back unchanged."""
    import _variants as V

    p, o, loss = V.raw_step(p, o, x, y)
    return p, o, h, loss


def build(cfg, steps, dtype, x, y):
    """The four variants as ``name -> run()`` (each ``run`` does ``steps`` steps and blocks), plus the
    two compiled steps for inspection."""
    import _variants as V
    import jax
    import jax.numpy as jnp

    from jaxnet.train import make_train_step

    batches = V._device_batches(cfg, steps, dtype, x, y)
    runs, compiled = {}, {}
    extras = {
        "raw-jax-step": None,
        "raw+5-scalars": tuple(jnp.asarray(v, jnp.float32) for v in HYPER),
        "raw+1-vector": jnp.asarray(HYPER, jnp.float32),
    }
    for name, extra in extras.items():
        params = V.raw_init(jax.random.PRNGKey(0), cfg.sizes, dtype)
        fn = jax.jit(raw_step_carrying, donate_argnums=(0, 1, 2))
        if name == "raw-jax-step":
            compiled[name] = fn.lower(params, V.raw_adam_init(params), None, *batches[0]).compile()
        runs[name] = V.carry_loop(lambda c, b, fn=fn: fn(*c, *b)[:3], [params, V.raw_adam_init(params), extra], batches)

    model, opt, params, state, opt_state = V._jaxnet_parts(cfg, dtype)
    step = make_train_step(model, V.JAXNET_LOSS, opt)
    compiled["jaxnet-step"] = step.lower(params, state, opt_state, batches[0], None).compile()
    runs["jaxnet-step"] = V.carry_loop(lambda c, b: step(*c, b, None)[:3], [params, state, opt_state], batches)
    return runs, compiled


def program_stats(compiled) -> dict:
    """Fusions, custom calls (GEMMs on a GPU) and bytes accessed of a compiled step."""
    text = compiled.as_text()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return {
        "fusions": text.count(" fusion("),
        "custom_calls": text.count("custom-call("),
        "bytes": float((cost or {}).get("bytes accessed", float("nan"))),
    }


def main() -> None:
    p = C.driver_parser("jaxnet's training step against the hand-written one, in one process, interleaved.")
    p.add_argument("--configs", default="overhead,small,medium")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    args = p.parse_args()
    import jax
    import jax.numpy as jnp

    profile = args.profile or ("gpu" if jax.default_backend() == "gpu" else "cpu")
    C.jax_setup(args.dtype)
    dtype = jnp.dtype(args.dtype)
    rounds = 1 if args.smoke else max(args.rounds, 1)
    rng = random.Random(args.seed)
    raw, sections = {}, [C.header(f"Step overhead, one process ({args.dtype}, {profile})", sys.argv)]
    for name in ["smoke"] if args.smoke else args.configs.split(","):
        cfg = C.get_config(name, profile)
        steps = C.steps_for(cfg, profile)
        x, y = C.make_data(cfg, steps)
        runs, compiled = build(cfg, steps, dtype, x, y)
        for run in runs.values():  # compile and warm up
            run()
            run()
        times = {k: [] for k in runs}
        for _ in range(rounds):
            for k in rng.sample(sorted(runs), len(runs)):
                t0 = time.perf_counter()
                runs[k]()
                times[k].append((time.perf_counter() - t0) / steps)
        stats = {k: program_stats(c) for k, c in compiled.items()}
        raw[cfg.name] = {"times": times, "programs": stats}
        rows = []
        for k, ts in times.items():
            ratio = C.summary([a / b for a, b in zip(times["raw-jax-step"], ts, strict=True)])
            prog = stats.get(k)
            rows.append(
                [
                    k,
                    C.fmt(C.summary([t * 1e3 for t in ts]), ".3g"),
                    f"{min(ts) * 1e3:.3g}",
                    C.fmt(ratio, ".2f"),
                    "" if prog is None else f"{prog['fusions']} / {prog['custom_calls']} / {prog['bytes']:.3g}",
                ]
            )
        sections.append(
            f"#### {cfg.label()}, {rounds} rounds x {steps} steps\n\n"
            + C.markdown_table(
                [
                    "variant",
                    "ms/step median [range]",
                    "fastest ms/step",
                    "× raw-jax-step (speed, per round)",
                    "compiled: fusions / custom calls / bytes",
                ],
                rows,
            )
        )
    C.write_outputs(args, raw, "\n\n".join(sections))


if __name__ == "__main__":
    main()
