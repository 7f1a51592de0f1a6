"""The CPU benchmark suite (``make bench``): throughput, per-call step cost, ensemble and data-parallel scaling.

Runs the four drivers one after the other and writes their Markdown tables and raw JSON
to ``out/bench/`` (ignored by git); copy tables worth keeping into ``benchmarks/RESULTS.md``.
About 10 minutes on a 2-core machine with every peer installed: each suite has a time budget, and
rounds that would overrun it are skipped (the first round always runs; ``--no-budget`` runs all).

Usage::

    python benchmarks/run_cpu.py                              # the whole suite, 3 rounds each
    python benchmarks/run_cpu.py --only throughput --rounds 5 --configs overhead,small
    python benchmarks/run_cpu.py --smoke                      # seconds: checks that it all runs
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SUITES = ("throughput", "step-overhead", "ensemble", "parallel")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(SUITES), help=f"comma-separated subset of {SUITES}")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--configs", default=None, help="throughput configs (default: all four)")
    p.add_argument("--variants", default=None, help="throughput variants (default: all installed)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "out", "bench"))
    p.add_argument("--smoke", action="store_true")
    p.add_argument(
        "--no-budget",
        action="store_true",
        help="run every round even past the suites' time budgets (throughput 7 min, ensemble "
        "1.5 min, parallel 2 min; the first round always runs; step-overhead has none, ~30 s)",
    )
    args = p.parse_args()
    only = [s for s in args.only.split(",") if s]
    for s in only:
        if s not in SUITES:
            p.error(f"unknown suite {s!r}; choose from {SUITES}")
    os.makedirs(args.out, exist_ok=True)
    common = ["--profile", "cpu", "--rounds", str(args.rounds)] + (["--smoke"] if args.smoke else [])
    commands = {
        "throughput": ["throughput.py"]
        + (["--configs", args.configs] if args.configs else [])
        + (["--variants", args.variants] if args.variants else []),
        # one process, many short rounds: the per-call cost that separate processes cannot resolve
        "step-overhead": [
            "step_overhead.py",
            "--configs",
            "overhead,small,medium",
            "--rounds",
            "1" if args.smoke else "15",
        ],
        "ensemble": ["ensemble_scaling.py"],
        "parallel": ["parallel_scaling.py"],
    }
    budgets = {"throughput": 420, "step-overhead": 60, "ensemble": 90, "parallel": 120}
    failed = []
    for suite in only:
        script, *extra = commands[suite]
        if not args.no_budget:
            extra += ["--budget", str(budgets[suite])]
        out = os.path.join(args.out, f"cpu-{suite}")
        cmd = [
            sys.executable,
            os.path.join(HERE, script),
            *common,
            *extra,
            "--json",
            out + ".json",
            "--markdown",
            out + ".md",
        ]
        print(f"== {suite}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        if subprocess.run(cmd).returncode != 0:
            failed.append(suite)
        print(f"== {suite} took {time.perf_counter() - t0:.0f} s; tables in {out}.md", flush=True)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
