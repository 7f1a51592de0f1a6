"""The machine's measured matrix-multiply rate: the yardstick of the throughput tables.

Two numbers per backend (JAX/XLA, and PyTorch when installed):

* the peak: square ``n x n @ n x n`` products, GFLOP/s = ``2 n^3 / seconds``, the best
  median over a few sizes;
* per MLP config, the matrix products of one training step alone (forward ``h W``,
  backward ``h^T d`` and ``d W^T``, no activations, loss or optimizer), expressed as
  samples/s so that a training step's samples/s divided by it is the share of the
  step's time that is matrix work.

Usage: ``python benchmarks/matmul_rate.py [--rounds 3] [--dtype float32] [--smoke]``
"""

from __future__ import annotations

import itertools
import statistics
import sys

import _common as C

SIZES = {"cpu": (512, 1024, 2048), "gpu": (4096, 8192)}


def _gemm_chain_shapes(cfg: C.Config):
    """(forward, weight-gradient, input-gradient) product shapes of one step, as (m, k, n) triples."""
    b, out = cfg.batch, []
    for i, (a, c) in enumerate(itertools.pairwise(cfg.sizes)):
        out.append((b, a, c))  # h @ W
        out.append((a, b, c))  # h^T @ d
        if i > 0:  # the input's own gradient is never needed
            out.append((b, c, a))  # d @ W^T
    return out


def _measure_jax(dtype: str, sizes, cfgs, min_time: float) -> dict:
    import jax
    import jax.numpy as jnp

    C.jax_setup(dtype)
    dt = jnp.dtype(dtype)
    key = jax.random.PRNGKey(0)
    mm = jax.jit(lambda a, b: a @ b)
    by_size = {}
    for n in sizes:
        a = jax.random.normal(key, (n, n), dt)
        b = jax.random.normal(jax.random.fold_in(key, 1), (n, n), dt)
        _, times = C.time_calls(lambda a=a, b=b: mm(a, b).block_until_ready(), min_time=min_time)
        by_size[n] = 2 * n**3 / statistics.median(times) / 1e9
    gemm = {}
    for cfg in cfgs:
        shapes = _gemm_chain_shapes(cfg)
        ops = [
            (
                jax.random.normal(jax.random.fold_in(key, 2 * i), (m, k), dt),
                jax.random.normal(jax.random.fold_in(key, 2 * i + 1), (k, n), dt),
            )
            for i, (m, k, n) in enumerate(shapes)
        ]
        chain = jax.jit(lambda ops: [a @ b for a, b in ops])
        _, times = C.time_calls(lambda chain=chain, ops=ops: jax.block_until_ready(chain(ops)), min_time=min_time)
        gemm[cfg.name] = cfg.batch / statistics.median(times)
    return {
        "backend": "jax",
        "device": str(jax.devices()[0].device_kind),
        "by_size": by_size,
        "peak_gflops": max(by_size.values()),
        "gemm_samples_per_s": gemm,
    }


def _measure_torch(dtype: str, sizes, cfgs, min_time: float) -> dict:
    try:
        import torch
    except ImportError:
        return {"unavailable": "torch not installed"}
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dt = getattr(torch, dtype)
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    gen = torch.Generator(device=dev).manual_seed(0)
    by_size = {}
    for n in sizes:
        a = torch.randn(n, n, device=dev, dtype=dt, generator=gen)
        b = torch.randn(n, n, device=dev, dtype=dt, generator=gen)

        def run(a=a, b=b):
            a @ b
            sync()

        _, times = C.time_calls(run, min_time=min_time)
        by_size[n] = 2 * n**3 / statistics.median(times) / 1e9
    gemm = {}
    for cfg in cfgs:
        ops = [
            (
                torch.randn(m, k, device=dev, dtype=dt, generator=gen),
                torch.randn(k, n, device=dev, dtype=dt, generator=gen),
            )
            for m, k, n in _gemm_chain_shapes(cfg)
        ]

        def run(ops=ops):
            for a, b in ops:
                a @ b
            sync()

        _, times = C.time_calls(run, min_time=min_time)
        gemm[cfg.name] = cfg.batch / statistics.median(times)
    return {
        "backend": "torch",
        "device": dev,
        "threads": torch.get_num_threads(),
        "by_size": by_size,
        "peak_gflops": max(by_size.values()),
        "gemm_samples_per_s": gemm,
    }


def measure(backend: str, dtype: str, profile: str, config_names, smoke: bool = False) -> dict:
    """One backend's peak and per-config matrix-product rates (run inside a worker process)."""
    sizes = (64, 128) if smoke else SIZES[profile]
    cfgs = [C.get_config(n, profile) for n in config_names]
    min_time = 0.02 if smoke else 0.4
    fn = _measure_jax if backend == "jax" else _measure_torch
    return fn(dtype, sizes, cfgs, min_time)


def worker(argv) -> None:
    backend, dtype, profile, configs, smoke = argv
    C.emit(measure(backend, dtype, profile, [c for c in configs.split(",") if c], smoke == "1"))


def jobs_for(dtype: str, profile: str, configs, smoke: bool, backends=("jax", "torch")) -> dict:
    """The driver jobs measuring each backend (used by this script and by throughput.py)."""

    def args(b):
        return [b, dtype, profile, ",".join(configs), "1" if smoke else "0"]

    return {f"matmul-{b}": ("matmul_rate.py", args(b)) for b in backends}


def peak_per_round(results: dict) -> dict:
    """round -> the best peak GFLOP/s any backend reached in that round."""
    out = {}
    for name, runs in results.items():
        if not name.startswith("matmul-"):
            continue
        for r in C.ok_rounds(runs):
            out[r["round"]] = max(out.get(r["round"], 0.0), r["peak_gflops"])
    return out


def table(results: dict, profile: str, configs) -> str:
    rows = []
    for name in sorted(k for k in results if k.startswith("matmul-")):
        ok = C.ok_rounds(results[name])
        if not ok:
            status = (
                (results[name][0].get("unavailable") or results[name][0].get("error")) if results[name] else "not run"
            )
            rows.append([name[7:], status] + [""] * (1 + len(configs)))
            continue
        sizes = sorted(ok[0]["by_size"], key=int)
        per_size = ", ".join(f"{n}: {C.fmt(C.summary([r['by_size'][n] for r in ok]), '.0f', False)}" for n in sizes)
        peak = C.summary([r["peak_gflops"] for r in ok])
        gemm = [C.fmt(C.summary([r["gemm_samples_per_s"].get(c) for r in ok]), ".3g") for c in configs]
        rows.append([name[7:], per_size, C.fmt(peak, ".0f"), *gemm])
    head = ["backend", "GFLOP/s by n (median)", "peak GFLOP/s"] + [f"{c}: GEMMs alone, samples/s" for c in configs]
    return C.markdown_table(head, rows)


def main() -> None:
    p = C.driver_parser(__doc__.splitlines()[0])
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--configs", default="overhead,small,medium,large")
    args = C.parse_or_work(p, worker)
    if args is None:
        return
    profile = args.profile or C.detect_profile()
    configs = ["smoke"] if args.smoke else args.configs.split(",")
    rounds = 1 if args.smoke else args.rounds
    results = C.run_rounds(
        jobs_for(args.dtype, profile, configs, args.smoke), rounds, seed=args.seed, budget=args.budget
    )
    md = C.header(f"Matrix-multiply rate ({args.dtype}, {profile})", sys.argv) + "\n" + table(results, profile, configs)
    C.write_outputs(args, results, md)


if __name__ == "__main__":
    main()
