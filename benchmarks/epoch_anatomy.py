"""What a compiled epoch contains: traces, jaxpr equations, HLO ops and compile time, against a hand-written scan.

For one MLP config (the throughput configs: ``overhead``, ``small``, ``medium``, ``large``) this
builds four programs over the same data and prints, for each:

- ``step traces``: how many times the training step was traced (a penalty that counts its calls);
- ``jaxpr eqns``: equations of the program's jaxpr, counted recursively through scans, conds and
  whiles (and how many of them are ``scan`` / ``cond`` / ``while``);
- ``HLO ops``: instructions of the optimized HLO module XLA compiled (all computations), and how
  many ``dot`` ops it holds (each copy of the step holds its forward and backward matrix products);
- ``fusions`` / ``whiles``: its ``fusion`` and ``while`` instructions. On the CPU each fusion is
  a kernel XLA generates machine code for (about 14 ms of compile each on the 2-core dev machine,
  ``benchmarks/compile_cost.py``), so these, more than the op count, set the compile time;
- ``lower s`` / ``compile s``: seconds to trace and lower, and to compile (in this process, after
  a warm-up compile of an unrelated tiny program);
- ``ms/epoch``: median time of one call after compilation.

The programs: ``raw scan (pre-cut)``: a hand-written ``lax.scan`` of an Adam step over batches
cut once before the call (no shuffle); ``raw scan (shuffled)``: the same with a device-side
``jax.random.permutation`` and a gather per step; ``make_train_epoch``: jaxnet's epoch; ``fit
epoch``: the program :func:`jaxnet.train.fit` compiles for one epoch per call.

Usage::

    python benchmarks/epoch_anatomy.py --config overhead
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def count_eqns(jaxpr) -> dict:
    """Equations of a (closed) jaxpr, recursively through every sub-jaxpr, plus per-primitive counts."""
    from jax.extend import core as jex_core

    counts = {"eqns": 0, "scan": 0, "cond": 0, "while": 0}

    def subjaxprs(params):
        for v in params.values():
            items = v if isinstance(v, (tuple, list)) else (v,)
            for it in items:
                if isinstance(it, jex_core.ClosedJaxpr):
                    yield it.jaxpr
                elif isinstance(it, jex_core.Jaxpr):
                    yield it

    def walk(j):
        for e in j.eqns:
            counts["eqns"] += 1
            name = e.primitive.name
            if name in ("scan", "cond", "while"):
                counts[name] += 1
            for sub in subjaxprs(e.params):
                walk(sub)

    walk(getattr(jaxpr, "jaxpr", jaxpr))
    return counts


def hlo_counts(compiled) -> dict:
    """Instructions in the optimized HLO (every computation); its ``dot``, ``fusion`` and ``while`` ops."""
    text = compiled.as_text()
    ops = dots = fusions = whiles = 0
    for line in text.splitlines():
        s = line.strip()
        if " = " in s and not s.startswith(("HloModule", "//", "ENTRY", "}")) and "{" not in s.split(" = ")[0]:
            ops += 1
            dots += " dot(" in s
            fusions += " fusion(" in s
            whiles += " while(" in s
    return {"hlo_ops": ops, "dots": dots, "fusions": fusions, "whiles": whiles}


def measure(name, fn, args, *, calls=5, donate_from=None, static=()):
    """Lower, compile and time ``fn`` (a jitted function) on ``args``; returns a row dict."""
    import jax

    t0 = time.perf_counter()
    traced = fn.trace(*static, *args)
    jaxpr = traced.jaxpr
    lowered = traced.lower()
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    times = []
    for _ in range(calls):
        a = args if donate_from is None else donate_from()
        t = time.perf_counter()
        jax.block_until_ready(compiled(*a))
        times.append(time.perf_counter() - t)
    return {
        "program": name,
        **count_eqns(jaxpr),
        **hlo_counts(compiled),
        "lower_s": t1 - t0,
        "compile_s": t2 - t1,
        "ms": 1e3 * statistics.median(times),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="overhead")
    p.add_argument("--steps", type=int, default=0, help="steps per epoch (default: the throughput CPU setting)")
    args = p.parse_args()

    import _common as C
    import _variants as V
    import jax
    import jax.numpy as jnp

    import jaxnet as jn
    from jaxnet.train import epoch as E

    C.jax_setup("float32")
    cfg = C.get_config(args.config, "cpu")
    steps = args.steps or C.steps_for(cfg, "cpu")
    xn, yn = C.make_data(cfg, steps)
    x, y = jnp.asarray(xn), jnp.asarray(yn)
    n, b = x.shape[0], cfg.batch
    jax.jit(lambda a: a + 1)(jnp.ones(3)).block_until_ready()  # first-compile costs out of the way

    rows = []
    params = V.raw_init(jax.random.PRNGKey(0), cfg.sizes, jnp.float32)
    opt = V.raw_adam_init(params)
    xs, ys = x.reshape(steps, b, -1), y.reshape(steps, b)

    rows.append(measure("raw scan (pre-cut)", jax.jit(V.raw_epoch_precut), (params, opt, xs, ys)))
    raw_shuf = jax.jit(functools.partial(V.raw_epoch, steps=steps, batch=b))
    rows.append(measure("raw scan (shuffled)", raw_shuf, (params, opt, x, y, jax.random.PRNGKey(1))))

    traces = []

    def penalty(p):  # counts traces of the step; adds nothing
        traces.append(1)
        return jnp.zeros((), jnp.float32)

    model = jn.MLP(list(cfg.sizes[1:]))
    _, jp, js = model.init(jax.random.PRNGKey(0), (-1, cfg.sizes[0]))
    adam = jn.adam(V.LR)
    epoch = jn.train.make_train_epoch(model, V.JAXNET_LOSS, adam, batch_size=b, n=n, penalty=penalty)
    row = measure("make_train_epoch", epoch, (jp, js, adam.init(jp), (x, y), jax.random.PRNGKey(1)))
    rows.append({**row, "traces": len(traces)})

    traces.clear()
    ecfg = E.make_config(model, V.JAXNET_LOSS, adam, n=n, batch_size=b, penalty=penalty)
    w = jnp.ones((n,), jnp.float32)

    def fresh():
        carry = E.initial_carry(ecfg, jp, js, adam.init(jp))
        carry = jax.tree_util.tree_map(jnp.copy, carry)
        es = jnp.zeros((1,), jnp.int32)
        return (carry, x, y, w, None, jax.random.PRNGKey(1), es, es >= 0)

    row = measure("fit epoch", E.run_epochs_jit, fresh(), donate_from=fresh, static=(ecfg,))
    rows.append({**row, "traces": len(traces)})

    print(f"config {cfg.label()}, {steps} steps per epoch, jax {jax.__version__}")
    head = ["program", "step traces", "jaxpr eqns", "scan/cond/while", "HLO ops", "dots", "fusions", "whiles"]
    head += ["lower s", "compile s"]
    head.append("ms/epoch")
    table = [
        [
            r["program"],
            str(r.get("traces", "—")),
            str(r["eqns"]),
            f"{r['scan']}/{r['cond']}/{r['while']}",
            str(r["hlo_ops"]),
            str(r["dots"]),
            str(r["fusions"]),
            str(r["whiles"]),
            f"{r['lower_s']:.2f}",
            f"{r['compile_s']:.2f}",
            f"{r['ms']:.2f}",
        ]
        for r in rows
    ]
    print(C.markdown_table(head, table))


if __name__ == "__main__":
    main()
