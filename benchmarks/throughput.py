"""MLP training throughput: jaxnet against hand-written JAX and the peer libraries.

Configs (ReLU MLP, softmax cross-entropy on integer labels, Adam, data in memory):
overhead 64-64-64-10 batch 32, small 784-256-256-10 batch 32, medium 784-1024-1024-10
batch 256, large 784-2048-2048-10 batch 2048 (784-4096-4096-10 batch 8192 on a GPU); and ``cnn``,
the CNN of ``_cnn.py`` on 8x8x1 images, batch 64 (jaxnet-step and raw-jax-step only; GFLOP/s
counted from its multiply-adds).

Each variant runs in its own process, once per round, the order shuffled every round;
inside a process each config is compiled, warmed up and timed over repeated calls of
``steps`` optimizer steps (median). Tables give samples/s (median over rounds with the
range), GFLOP/s counted as ``6 x weights x batch`` per step, that rate as a share of the
peak matrix-multiply rate measured in the same round (see ``matmul_rate.py``), the share of
the step's matrix products alone, and the per-round ratio to the hand-written JAX step.

Usage::

    python benchmarks/throughput.py                          # everything installed, 3 rounds
    python benchmarks/throughput.py --configs overhead,small --variants jaxnet-step,raw-jax-step --rounds 5
    python benchmarks/throughput.py --smoke                  # seconds: checks that it all runs
    python benchmarks/throughput.py --epoch --rounds 2       # only the variants of the epoch table (issue 16)

The last table compares jaxnet's compiled epoch (``jaxnet-scan``: ``make_train_epoch``, which
shuffles every epoch) with the hand-written scan over pre-cut batches (``raw-jax-scan-precut``,
no shuffle) and with a shuffling one (``raw-jax-scan``), and the compile + first call of a
``fit`` epoch (``jaxnet-fit``) with the hand-written scan's.
"""

from __future__ import annotations

import os
import statistics
import sys
import traceback

import _common as C
import matmul_rate
from _cnn import CNN_VARIANTS

MIN_TIME = {
    "cpu": {"overhead": 0.4, "small": 0.4, "medium": 0.6, "large": 1.0, "cnn": 0.4},
    "gpu": {"overhead": 0.3, "small": 0.3, "medium": 0.3, "large": 0.5, "cnn": 0.3},
}
REF = "raw-jax-step"
SMOKE_VARIANTS = "jaxnet-step,jaxnet-scan,jaxnet-fit,raw-jax-step,raw-jax-scan,raw-jax-scan-precut"
EPOCH_VARIANTS = "jaxnet-scan,jaxnet-fit,raw-jax-step,raw-jax-scan,raw-jax-scan-precut"


def worker(argv) -> None:
    variant, configs, profile, dtype, smoke = argv
    smoke = smoke == "1"
    import _variants as V

    build = V.VARIANTS[variant]
    if variant not in V.TORCH_VARIANTS:
        C.jax_setup(dtype)
    out = {"variant": variant, "configs": {}}
    for name in configs.split(","):
        cfg = C.get_config(name, profile)
        steps = C.steps_for(cfg, profile)
        x, y = C.make_data(cfg, steps)
        if cfg.name == "cnn" and variant not in CNN_VARIANTS:
            out["configs"][name] = {"error": f"{variant} has no CNN version (only {sorted(CNN_VARIANTS)})"}
            continue
        try:
            run = (CNN_VARIANTS[variant] if cfg.name == "cnn" else build)(cfg, steps, dtype, x, y)
            first, times = C.time_job(
                run, min_time=MIN_TIME[profile].get(cfg.name, 0.0), smoke=smoke
            )  # no entry for "smoke"
        except V.Unavailable as e:
            return C.emit({"unavailable": str(e)})
        except Exception as e:
            traceback.print_exc()
            out["configs"][name] = {"error": f"{type(e).__name__}: {e}"[:300]}
            continue
        per_call = statistics.median(times)
        out["configs"][name] = {
            "samples_per_s": steps * cfg.batch / per_call,
            "step_ms": 1e3 * per_call / steps,
            "gflops": steps * cfg.batch * cfg.flops_per_sample / per_call / 1e9,
            "first_call_s": first,
            "repeats": len(times),
        }
    C.emit(out)


def _value(results, job, config, key, rnd):
    for r in C.ok_rounds(results.get(job, [])):
        if r["round"] == rnd:
            v = r["configs"].get(config, {})
            return v.get(key)
    return None


def _per_round(results, job, config, key, rounds):
    return {i: _value(results, job, config, key, i) for i in range(rounds)}


def _ratio(a: dict, b: dict) -> dict | None:
    return C.summary([a[i] / b[i] for i in a if a[i] is not None and b.get(i)])


def tables(results: dict, configs, variants, profile: str, rounds: int) -> tuple[str, dict]:
    """The per-config Markdown tables and a dict of the target ratios."""
    peak = matmul_rate.peak_per_round(results)
    gemm = {}
    for job in ("matmul-jax", "matmul-torch"):
        for r in C.ok_rounds(results.get(job, [])):
            for c, v in r["gemm_samples_per_s"].items():
                gemm.setdefault(c, {})[r["round"]] = max(gemm.get(c, {}).get(r["round"], 0.0), v)
    parts, targets = [], {}
    head = [
        "variant",
        "samples/s",
        "ms/step",
        "GFLOP/s",
        "% of peak matmul",
        "% of GEMMs alone",
        f"× {REF} (per round)",
        "first call s",
    ]
    for c in configs:
        cfg = C.get_config(c, profile)
        ref = _per_round(results, REF, c, "samples_per_s", rounds)
        rows = []
        for v in variants:
            runs = results.get(v, [])
            if runs and not C.ok_rounds(runs):
                rows.append([v, runs[0].get("unavailable") or runs[0].get("error")] + [""] * (len(head) - 2))
                continue
            sps = _per_round(results, v, c, "samples_per_s", rounds)
            if all(s is None for s in sps.values()):
                err = next((r["configs"][c].get("error") for r in C.ok_rounds(runs) if c in r["configs"]), "no result")
                rows.append([v, err] + [""] * (len(head) - 2))
                continue
            gfl = _per_round(results, v, c, "gflops", rounds)
            pct = C.summary([100 * gfl[i] / peak[i] for i in gfl if gfl[i] is not None and peak.get(i)])
            pgemm = C.summary([100 * sps[i] / gemm[c][i] for i in sps if sps[i] is not None and gemm.get(c, {}).get(i)])
            ratio = _ratio(sps, ref)
            targets[(v, c)] = {"ratio_vs_ref": ratio, "pct_peak": pct}
            rows.append(
                [
                    v,
                    C.fmt(C.summary(sps.values()), ".4g"),
                    C.fmt(C.summary(_per_round(results, v, c, "step_ms", rounds).values()), ".3g", False),
                    C.fmt(C.summary(gfl.values()), ".3g", False),
                    C.fmt(pct, ".0f"),
                    C.fmt(pgemm, ".0f"),
                    C.fmt(ratio, ".2f"),
                    C.fmt(C.summary(_per_round(results, v, c, "first_call_s", rounds).values()), ".2g", False),
                ]
            )
        parts.append(f"#### {cfg.label()}\n\n" + C.markdown_table(head, rows))
    return "\n\n".join(parts), targets


def target_table(targets: dict, results: dict, configs, rounds: int) -> str:
    """The issue's throughput targets, each with its measured value."""
    rows = []

    def add(what, goal, s, ok):
        rows.append(
            [
                what,
                goal,
                C.fmt(s, ".2f") if s else "not measured",
                ("met" if ok(s["median"]) else "missed") if s else "—",
            ]
        )

    for c in configs:
        add(
            f"jaxnet-step / raw-jax-step, {c}",
            "≥ 0.97",
            targets.get(("jaxnet-step", c), {}).get("ratio_vs_ref"),
            lambda m: m >= 0.97,
        )
    for c, goal in (("overhead", 2.0), ("small", 1.3)):
        if c in configs:
            add(
                f"jaxnet-scan / raw-jax-step, {c}",
                f"≥ {goal}",
                targets.get(("jaxnet-scan", c), {}).get("ratio_vs_ref"),
                lambda m, g=goal: m >= g,
            )
    for c in ("overhead", "small"):
        if c in configs:
            s = _ratio(
                _per_round(results, "jaxnet-scan", c, "samples_per_s", rounds),
                _per_round(results, "raw-jax-step-shuffled", c, "samples_per_s", rounds),
            )
            add(
                f"jaxnet-scan / raw-jax-step-shuffled (same shuffling work), {c}",
                "(≥ 2.0 / ≥ 1.3)",
                s,
                lambda m, g=(2.0 if c == "overhead" else 1.3): m >= g,
            )
            s = _ratio(
                _per_round(results, "jaxnet-scan", c, "samples_per_s", rounds),
                _per_round(results, "raw-jax-scan", c, "samples_per_s", rounds),
            )
            add(f"jaxnet-scan / raw-jax-scan (library cost of the epoch), {c}", "(≈ 1)", s, lambda m: m >= 0.97)
    for c in ("medium", "large"):
        if c in configs:
            for v in ("jaxnet-step", "jaxnet-scan"):
                add(f"{v} % of peak matmul, {c}", "≥ 95", targets.get((v, c), {}).get("pct_peak"), lambda m: m >= 95)
    if "large" in configs:
        for v in ("jaxnet-step", "jaxnet-scan"):
            s = _ratio(
                _per_round(results, v, "large", "samples_per_s", rounds),
                _per_round(results, "torch-compile", "large", "samples_per_s", rounds),
            )
            add(f"{v} / torch-compile, large", "≥ 1.0", s, lambda m: m >= 1.0)
    return C.markdown_table(["target", "goal", "measured (median [range] over rounds)", "verdict"], rows)


def epoch_table(results: dict, configs, rounds: int) -> str:
    """The compiled epoch against hand-written JAX (issue 16): throughput and compile + first call ratios."""
    rows = []

    def ratio(a, b, key="samples_per_s", c=None):
        return _ratio(_per_round(results, a, c, key, rounds), _per_round(results, b, c, key, rounds))

    def add(what, goal, s, ok):
        verdict = ("met" if ok(s["median"]) else "missed") if (s and ok) else "—"
        rows.append([what, goal, C.fmt(s, ".2f") if s else "not measured", verdict])

    for c in configs:
        add(
            f"jaxnet-scan / raw-jax-scan-precut (shuffle included vs none), {c}",
            "≥ 1.0",
            ratio("jaxnet-scan", "raw-jax-scan-precut", c=c),
            lambda m: m >= 1.0,
        )
        add(
            f"jaxnet-scan / raw-jax-scan (both shuffle every epoch), {c}",
            "",
            ratio("jaxnet-scan", "raw-jax-scan", c=c),
            None,
        )
        add(
            f"jaxnet-scan / raw-jax-step (per-step loop, pre-cut), {c}",
            "≥ 1.3" if c == "overhead" else "",
            ratio("jaxnet-scan", "raw-jax-step", c=c),
            (lambda m: m >= 1.3) if c == "overhead" else None,
        )
        add(
            f"compile + first call: jaxnet-fit / raw-jax-scan-precut, {c}",
            "≤ 1.5",
            ratio("jaxnet-fit", "raw-jax-scan-precut", "first_call_s", c=c),
            lambda m: m <= 1.5,
        )
        add(
            f"compile + first call: jaxnet-scan / raw-jax-scan-precut, {c}",
            "",
            ratio("jaxnet-scan", "raw-jax-scan-precut", "first_call_s", c=c),
            None,
        )
    return C.markdown_table(["ratio", "goal", "measured (median [range] over rounds)", "verdict"], rows)


def main() -> None:
    import _variants as V

    p = C.driver_parser(__doc__.splitlines()[0])
    p.add_argument("--configs", default="overhead,small,medium,large", help="comma-separated config names")
    p.add_argument("--variants", default=",".join(V.VARIANTS), help=f"comma-separated, from {list(V.VARIANTS)}")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument(
        "--split-configs",
        action="store_true",
        help="one process per (variant, config) instead of one per variant (slower, more isolated)",
    )
    p.add_argument("--no-matmul", action="store_true", help="skip the matrix-multiply rate jobs")
    p.add_argument("--epoch", action="store_true", help=f"variants {EPOCH_VARIANTS} only, no matmul jobs")
    p.add_argument("--matmul-backends", default="jax,torch", help="backends whose matmul rate is measured")
    args = C.parse_or_work(p, worker)
    if args is None:
        return
    profile = args.profile or C.detect_profile()
    configs = ["smoke"] if args.smoke else [c.strip() for c in args.configs.split(",") if c.strip()]
    for c in configs:
        C.get_config(c, profile)
    variants = [
        v.strip()
        for v in (
            EPOCH_VARIANTS
            if args.epoch
            else SMOKE_VARIANTS
            if args.smoke and "--variants" not in sys.argv
            else args.variants
        ).split(",")
        if v.strip()
    ]
    unknown = [v for v in variants if v not in V.VARIANTS]
    if unknown:
        p.error(f"unknown variants {unknown}; choose from {list(V.VARIANTS)}")
    if args.dtype == "bfloat16" and profile == "cpu":
        print("note: bfloat16 on a CPU measures emulation, not a fast path")
    rounds = 1 if args.smoke else args.rounds
    smoke = "1" if args.smoke else "0"
    jobs = {}
    for v in variants:
        groups = [[c] for c in configs] if args.split_configs else [configs]
        for g in groups:
            name = v if len(groups) == 1 else f"{v}@{g[0]}"
            jobs[name] = ("throughput.py", [v, ",".join(g), profile, args.dtype, smoke])
    if not (args.no_matmul or args.epoch):
        jobs.update(
            matmul_rate.jobs_for(
                args.dtype, profile, configs, args.smoke, [b for b in args.matmul_backends.split(",") if b]
            )
        )
    print(f"throughput: {len(jobs)} jobs x {rounds} rounds ({profile}, {args.dtype})", flush=True)
    head = C.header(f"Training throughput ({args.dtype}, {profile})", sys.argv)
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    def render(results):
        if args.split_configs:
            results = merge_split(results)
        body, targets = tables(results, configs, variants, profile, rounds)
        load_now = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        return (
            head
            + f"- load average (1 min): {load_start:.1f} at the start, {load_now:.1f} at the end\n"
            + "\n"
            + body
            + "\n\n#### Matrix-multiply rate measured in the same rounds\n\n"
            + matmul_rate.table(results, profile, configs)
            + "\n\n#### Targets\n\n"
            + target_table(targets, results, configs, rounds)
            + "\n\n#### The compiled epoch against hand-written JAX (issue 16)\n\n"
            + epoch_table(results, configs, rounds)
        )

    results = C.run_rounds(
        jobs,
        rounds,
        seed=args.seed,
        budget=args.budget,
        on_progress=lambda res: C.write_outputs(args, res, render(res), echo=False),
    )
    C.write_outputs(args, results, render(results))


def merge_split(results: dict) -> dict:
    """Fold the ``variant@config`` jobs of ``--split-configs`` back into one record per variant and round."""
    merged = {}
    for name, runs in results.items():
        base = name.split("@")[0]
        for r in runs:
            slot = next((m for m in merged.setdefault(base, []) if m["round"] == r["round"]), None)
            if slot is None or "configs" not in slot:
                merged[base] = [m for m in merged[base] if m is not slot] + [
                    dict(r, configs=dict(r.get("configs", {})))
                ]
            elif "configs" in r:
                slot["configs"].update(r["configs"])
    return merged


if __name__ == "__main__":
    main()
