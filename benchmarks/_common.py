"""Shared plumbing of the benchmark scripts: configs, timing, process-isolated jobs, statistics, tables.

Every benchmark script has two halves. The *worker* half measures one thing in the current
process and prints one ``@@RESULT@@ {json}`` line. The *driver* half starts one fresh process
per job and runs the jobs in a new random order each round, so that drift in the machine's
speed (other programs, frequency changes) hits every variant alike; ratios are computed
round by round, between measurements taken minutes apart at most, then summarised by their
median and range.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import itertools
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

RESULT_TAG = "@@RESULT@@"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


@dataclass(frozen=True)
class Config:
    """An MLP benchmark configuration: layer widths (input first) and batch size."""

    name: str
    sizes: tuple
    batch: int
    macs: int = 0  # multiply-adds per sample of a non-MLP network (the ``cnn`` config); 0 for an MLP

    @property
    def weights(self) -> int:
        """Number of matrix weights (biases excluded): the FLOP count uses ``6 * weights * batch`` per step."""
        if self.macs:
            return self.macs
        return sum(a * b for a, b in itertools.pairwise(self.sizes))

    @property
    def flops_per_sample(self) -> int:
        """Forward (2 per weight) plus the two backward matrix products (2 + 2 per weight)."""
        return 6 * self.weights

    def label(self) -> str:
        return f"{self.name} ({'-'.join(map(str, self.sizes))}, batch {self.batch})"


CONFIGS = {
    "overhead": Config("overhead", (64, 64, 64, 10), 32),
    "small": Config("small", (784, 256, 256, 10), 32),
    "medium": Config("medium", (784, 1024, 1024, 10), 256),
    "large": Config("large", (784, 2048, 2048, 10), 2048),
    # The CNN of _cnn.py on 8x8x1 images (64 pixels in, 10 classes out); only jaxnet-step and raw-jax-step build it.
    "cnn": Config("cnn", (64, 10), 64, macs=8 * 8 * 9 * 32 + 4 * 4 * 9 * 32 * 64 + 2 * 2 * 64 * 10),
}
# On a GPU the large config is scaled up so that it fills the device.
GPU_CONFIGS = dict(CONFIGS, large=Config("large", (784, 4096, 4096, 10), 8192))
SMOKE_CONFIG = Config("smoke", (16, 8, 8, 4), 8)

# Steps per timed call (one "epoch" of the scan variants; the data set holds steps * batch samples).
STEPS = {
    "cpu": {"overhead": 256, "small": 128, "medium": 16, "large": 2, "smoke": 2, "cnn": 32},
    "gpu": {"overhead": 512, "small": 512, "medium": 256, "large": 16, "smoke": 2, "cnn": 256},
}


def get_config(name: str, profile: str) -> Config:
    if name == "smoke":
        return SMOKE_CONFIG
    table = GPU_CONFIGS if profile == "gpu" else CONFIGS
    if name not in table:
        raise SystemExit(f"unknown config {name!r}; choose from {sorted(table)}")
    return table[name]


def steps_for(cfg: Config, profile: str) -> int:
    return STEPS[profile][cfg.name]


# ---------------------------------------------------------------------------------------------
# Worker side


def time_calls(run, *, min_time: float, min_repeats: int = 3, max_repeats: int = 20, warmup: int = 1):
    """Seconds per call of ``run()`` (which must block until its work is done), repeated.

    The first call (compilation) is timed separately; ``warmup`` further calls are
    discarded; then calls are timed until ``min_time`` seconds have passed and at least
    ``min_repeats`` calls were made.

    Returns:
      ``(first_call_seconds, [seconds per timed call, ...])``.
    """
    t0 = time.perf_counter()
    run()
    first = time.perf_counter() - t0
    for _ in range(warmup):
        run()
    times, start = [], time.perf_counter()
    while len(times) < max_repeats and (len(times) < min_repeats or time.perf_counter() - start < min_time):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return first, times


def time_job(run, *, min_time: float, smoke: bool):
    """:func:`time_calls` with the suite's policy: smoke mode checks the plumbing with one timed
    call, a real job times at least 3 calls and ``min_time`` seconds."""
    return time_calls(run, min_time=0.01 if smoke else min_time, min_repeats=1 if smoke else 3)


def emit(result: dict) -> None:
    """Print the worker's result line (the driver reads the last one)."""
    print(RESULT_TAG + " " + json.dumps(result), flush=True)


def jax_setup(dtype: str) -> None:
    """Make float32 matrix products exact float32 everywhere (no TF32 on GPUs), as PyTorch's default is."""
    import jax

    if dtype == "float32":
        jax.config.update("jax_default_matmul_precision", "highest")


def block(tree) -> None:
    import jax

    jax.block_until_ready(tree)


def make_data(cfg: Config, steps: int, seed: int = 0):
    """Synthetic in-memory data: ``x`` standard normal ``[steps * batch, d_in]`` float32, integer labels."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = steps * cfg.batch
    x = rng.standard_normal((n, cfg.sizes[0]), dtype=np.float32)
    y = rng.integers(0, cfg.sizes[-1], size=n).astype(np.int32)
    return x, y


# ---------------------------------------------------------------------------------------------
# Driver side


def run_job(script: str, args: list, *, env: dict | None = None, timeout: float = 600.0) -> dict:
    """Run ``python script --worker args...`` in a fresh process and return its result dict.

    A failing worker yields ``{"error": <last lines of its output>}`` instead of raising,
    so one broken peer does not stop the suite.
    """
    cmd = [sys.executable, os.path.join(HERE, script), "--worker", *map(str, args)]
    full_env = dict(os.environ, **(env or {}))
    # jaxnet is imported from this checkout even where it is not installed (a bare GPU machine).
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, full_env.get("PYTHONPATH", "")) if p)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-6:]
    return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}


def run_rounds(
    jobs: dict,
    rounds: int,
    *,
    seed: int = 0,
    env_of=None,
    log=print,
    timeout: float = 600.0,
    budget: float | None = None,
    on_progress=None,
) -> dict:
    """Run every job once per round, each in a fresh process, in a new random order each round.

    Args:
      jobs: name -> ``(script, [worker arguments])``.
      env_of: optional ``name -> extra environment`` for a job.
      budget: seconds; no new round starts when the rounds so far say it would end past this
        (the first round always runs).
      on_progress: called with the results so far after every job (to save partial results).

    Returns:
      name -> list of per-round result dicts (a job that reports ``unavailable`` or an error
      is not run again in later rounds).
    """
    order_rng = random.Random(seed)
    results = {name: [] for name in jobs}
    dead = set()
    start = time.perf_counter()
    for r in range(rounds):
        elapsed = time.perf_counter() - start
        if budget is not None and r > 0 and elapsed + elapsed / r > budget:
            log(f"  stopping after {r} round(s): another would pass the {budget:.0f} s budget")
            break
        names = [n for n in jobs if n not in dead]
        order_rng.shuffle(names)
        for name in names:
            if budget is not None and r > 0 and time.perf_counter() - start > budget:
                log(f"  budget of {budget:.0f} s spent: round {r + 1} left incomplete")
                break
            t0 = time.perf_counter()
            script, job_args = jobs[name]
            res = run_job(script, job_args, env=env_of(name) if env_of else None, timeout=timeout)
            res["round"] = r
            results[name].append(res)
            status = res.get("unavailable") or res.get("error")
            if status:
                dead.add(name)
            log(
                f"  round {r + 1}/{rounds} {name:<32s} {time.perf_counter() - t0:5.1f} s"
                + (f"  [{status}]" if status else "")
            )
            if on_progress is not None:
                on_progress(results)
    return results


def ok_rounds(results: list) -> list:
    return [r for r in results if "error" not in r and "unavailable" not in r]


def summary(values) -> dict | None:
    """Median and range of a list of numbers (``None`` for an empty list)."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def fmt(s: dict | None, spec: str = ".3g", spread: bool = True) -> str:
    """``median [min-max]`` of a :func:`summary`."""
    if s is None:
        return "—"
    text = format(s["median"], spec)
    if spread and s["n"] > 1:
        text += f" [{format(s['min'], spec)}–{format(s['max'], spec)}]"
    return text


def ratios(results: dict, name: str, ref: str, key: str) -> dict | None:
    """Per-round ratios ``results[name][key] / results[ref][key]`` of the rounds both completed."""
    a = {r["round"]: r[key] for r in ok_rounds(results.get(name, []))}
    b = {r["round"]: r[key] for r in ok_rounds(results.get(ref, []))}
    return summary([a[i] / b[i] for i in sorted(a) if b.get(i)])


def markdown_table(header: list, rows: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def versions() -> dict:
    """Versions of Python and every library the suite may use (absent ones omitted)."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("jax", "jaxlib", "numpy", "optax", "flax", "equinox", "dm-haiku", "torch", "jaxnet"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def machine() -> str:
    """A one-line description of the CPU (and GPU, when nvidia-smi answers)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    text = f"{cpu}, {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} cores"
    try:
        gpu = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=20
        ).stdout.strip()
        if gpu:
            text += f"; GPU: {', '.join(gpu.splitlines())}"
    except (OSError, subprocess.SubprocessError):
        pass
    return text


def header(title: str, argv: list) -> str:
    """The provenance lines every results table starts with: date, machine, versions, command."""
    vers = ", ".join(f"{k} {v}" for k, v in versions().items())
    cmd = "python " + " ".join([os.path.relpath(argv[0], ROOT), *argv[1:]])
    return (
        f"### {title}\n\n"
        f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}\n"
        f"- machine: {machine()}\n- versions: {vers}\n- command: `{cmd}`\n"
    )


def driver_parser(description: str) -> argparse.ArgumentParser:
    """The options every driver shares."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument(
        "--profile",
        choices=("cpu", "gpu"),
        default=None,
        help="step counts and the large config's size; default: gpu when jax sees one",
    )
    p.add_argument("--smoke", action="store_true", help="tiny sizes, one round: checks the plumbing in seconds")
    p.add_argument("--json", default=None, help="also write the raw per-round results to this JSON file")
    p.add_argument("--markdown", default=None, help="also write the tables to this Markdown file")
    p.add_argument("--seed", type=int, default=0, help="seed of the job order")
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds: start no round that would end past this (the first always runs)",
    )
    return p


def parse_or_work(p: argparse.ArgumentParser, worker):
    """Parse the driver's options; in a worker process run ``worker(positional args)`` and return ``None``."""
    args, rest = p.parse_known_args()
    if args.worker:
        worker(rest)
        return None
    if rest:
        p.error(f"unrecognized arguments: {rest}")
    return args


def detect_profile() -> str:
    """``gpu`` when a fresh process's jax sees a GPU, else ``cpu`` (checked in a subprocess to keep this one clean)."""
    code = "import jax; print(jax.default_backend())"
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    except subprocess.SubprocessError:
        return "cpu"
    return "gpu" if out.strip().endswith(("gpu", "cuda", "rocm")) else "cpu"


def write_outputs(args, raw: dict, markdown: str, *, echo: bool = True) -> None:
    """Write the raw results (``--json``) and the tables (``--markdown``); print the tables if ``echo``."""
    if echo:
        print(markdown)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1)
    if args.markdown:
        os.makedirs(os.path.dirname(os.path.abspath(args.markdown)), exist_ok=True)
        with open(args.markdown, "w") as f:
            f.write(markdown + "\n")
