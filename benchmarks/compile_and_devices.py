"""Two measurements of issue 15: compile once per program, and ``fit`` on 1 vs 8 host devices.

``recompile``: a loop ``for lr in 5 values: fit(model, loss, adam(lr), ...)`` in a fresh process,
once with jaxnet's optimizers as they are (compared by program key: one compilation) and once
with each optimizer re-wrapped in a new function (compared by identity, as before the
change: one compilation per value). Reports the number of compiled epoch programs, the
time of the whole loop and of its first and later calls, and the resident-memory growth.

``devices``: the same ``fit`` (MLP 64-256-256-10 on random data, batch 256) with one
device and with ``mesh=data_mesh()`` over 8 host devices made by ``jax_num_cpu_devices``.
On a CPU the 8 "devices" share the same cores: this measures what splitting and
all-reducing cost, not a speed-up. Each variant runs in its own process.

Usage::

    python benchmarks/compile_and_devices.py [--rounds 3] [--smoke] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

TAG = "@@RESULT@@"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def worker_recompile(keyed: bool, smoke: bool) -> dict:
    import jax
    import jax.numpy as jnp

    from jaxnet import nn
    from jaxnet import optim as O
    from jaxnet import train as T
    from jaxnet.train import epoch as E

    n, width = (64, 8) if smoke else (2048, 256)
    x = jax.random.normal(jax.random.PRNGKey(0), (n, 64))
    y = (jnp.arange(n) % 10).astype(jnp.int32)
    model = nn.MLP([width, width, 10])
    times, rss0 = [], None
    for lr in (1e-4, 3e-4, 1e-3, 3e-3, 1e-2):
        opt = O.adam(lr)
        if not keyed:  # a new function per object: compared by identity, as before item 6
            opt = O.Optimizer(opt.init, lambda g, s, p=None, _u=opt.update: _u(g, s, p))
        t0 = time.perf_counter()
        T.fit(
            model,
            "softmax_cross_entropy_with_integer_labels",
            opt,
            (x, y),
            epochs=1,
            batch_size=32,
            key=jax.random.PRNGKey(1),
            progress=False,
        )
        times.append(time.perf_counter() - t0)
        rss0 = _rss_mb() if rss0 is None else rss0  # growth over the 4 later calls
    return {
        "programs": E.run_epochs_jit._cache_size(),
        "total_s": sum(times),
        "first_s": times[0],
        "later_mean_s": statistics.mean(times[1:]),
        "rss_growth_mb": _rss_mb() - rss0,
    }


def worker_devices(devices: int, smoke: bool) -> dict:
    import jax

    jax.config.update("jax_num_cpu_devices", 8)
    import jax.numpy as jnp

    from jaxnet import nn
    from jaxnet import optim as O
    from jaxnet import train as T

    n, width, batch, epochs = (256, 16, 32, 2) if smoke else (8192, 256, 256, 4)
    x = jax.random.normal(jax.random.PRNGKey(0), (n, 64))
    y = (jnp.arange(n) % 10).astype(jnp.int32)
    model = nn.MLP([width, width, 10])
    mesh = None if devices == 1 else T.data_mesh(jax.devices()[:devices])
    kw = dict(batch_size=batch, key=jax.random.PRNGKey(1), progress=False, mesh=mesh)
    t0 = time.perf_counter()
    T.fit(model, "softmax_cross_entropy_with_integer_labels", O.adam(1e-3), (x, y), epochs=1, **kw)
    first = time.perf_counter() - t0  # compile + one epoch
    r = T.fit(model, "softmax_cross_entropy_with_integer_labels", O.adam(1e-3), (x, y), epochs=epochs, **kw)
    per_epoch = statistics.median(rec["time"] for rec in r.history.records)
    return {
        "devices": devices,
        "first_call_s": first,
        "epoch_s": per_epoch,
        "samples_per_s": n // batch * batch / per_epoch,
    }


def run_job(args: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "XLA_FLAGS": ""}
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env, timeout=1800)
    for line in proc.stdout.splitlines():
        if line.startswith(TAG):
            return json.loads(line[len(TAG) :])
    return {"error": proc.stderr[-2000:]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--smoke", action="store_true", help="tiny sizes, one round (for the tests)")
    p.add_argument("--markdown", default=None, help="also write the tables to this file")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    smoke = ["--smoke"] if args.smoke else []
    if args.worker:
        kind, value = args.worker.split(":")
        res = (
            worker_recompile(value == "keyed", args.smoke)
            if kind == "recompile"
            else worker_devices(int(value), args.smoke)
        )
        print(TAG + json.dumps(res), flush=True)
        return 0
    rounds = 1 if args.smoke else args.rounds
    rows = {"recompile:identity": [], "recompile:keyed": [], "devices:1": [], "devices:8": []}
    for _ in range(rounds):
        for job in rows:
            rows[job].append(run_job(["--worker", job, *smoke]))
    errors = {k: r["error"] for k, v in rows.items() for r in v if "error" in r}
    if errors:
        print(json.dumps(errors, indent=1), file=sys.stderr)
        return 1
    med = lambda job, k: statistics.median(r[k] for r in rows[job])  # noqa: E731
    lines = [
        f"5-value learning-rate loop, `fit(..., adam(lr), epochs=1)`, median of {rounds} round(s):",
        "",
        "| optimizers compared by | compiled programs | loop total (s) | first call (s) | later calls, mean (s) "
        "| RSS growth over the 4 later calls (MB) |",
        "|---|---|---|---|---|---|",
    ]
    for job, name in (("recompile:identity", "identity (before)"), ("recompile:keyed", "program key (after)")):
        lines.append(
            f"| {name} | {med(job, 'programs'):.0f} | {med(job, 'total_s'):.2f} | {med(job, 'first_s'):.2f} | "
            f"{med(job, 'later_mean_s'):.3f} | {med(job, 'rss_growth_mb'):.0f} |"
        )
    lines += [
        "",
        "`fit` on 1 vs 8 host devices (`mesh=data_mesh()`), median of rounds:",
        "",
        "| devices | first call incl. compile (s) | epoch (s) | samples/s |",
        "|---|---|---|---|",
    ]
    for job in ("devices:1", "devices:8"):
        lines.append(
            f"| {job.split(':')[1]} | {med(job, 'first_call_s'):.2f} | {med(job, 'epoch_s'):.4f} | "
            f"{med(job, 'samples_per_s'):.0f} |"
        )
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
