"""Sequence-model training steps: jaxnet against hand-written JAX and PyTorch (eager and ``torch.compile``).

Two models (see ``_seq.py``): a causal transformer language model (``transformer_lm``, byte
vocabulary, 128 tokens per sequence) and an LSTM language model over 100 time steps. Each of the
four variants of each model runs in its own fresh process (``_common.run_rounds``), in a new random
order every round; the table gives tokens per second (batch x time x steps / seconds) with median
and range over the rounds, and the per-round speed ratio to the hand-written JAX step (target for
jaxnet: >= 0.97). Before timing, every variant computes its first loss on the same batch from the
same params, and the table shows its difference from jaxnet's (the programs compute one function).
``raw-jax-cudnn`` (GPU, bfloat16, transformer only) is the hand-written step with the attention
of ``jax.nn.dot_product_attention(implementation="cudnn")``, the fused kernel: a reference for
what jaxnet's own (XLA) attention leaves on the table.

Usage::

    python benchmarks/sequence.py --rounds 3
    python benchmarks/sequence.py --models lstm --variants jaxnet-step,raw-jax-step --rounds 5
    python benchmarks/sequence.py --profile gpu --dtype bfloat16   # (GPU; see gpu.sh)
    python benchmarks/sequence.py --smoke
"""

from __future__ import annotations

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # the benchmark helpers, and jaxnet from this checkout
import _common as C  # noqa: E402

STEPS = {"cpu": {"transformer": 8, "lstm": 8}, "gpu": {"transformer": 64, "lstm": 32}}


def worker(argv) -> None:
    """``--worker MODEL VARIANT STEPS SMOKE DTYPE``: build, check the first loss, time, emit."""
    name, variant, steps, smoke, dtype = argv[0], argv[1], int(argv[2]), argv[3] == "1", argv[4]
    import _seq

    if variant.startswith("torch"):
        try:
            import torch  # noqa: F401
        except ImportError as e:
            return C.emit({"unavailable": f"torch not installed ({e})"})
    C.jax_setup(dtype)
    cfg = (_seq.SMOKE if smoke else _seq.MODELS)[name]
    batches = _seq.make_batches(cfg, steps)
    try:
        run, first = _seq.build(variant, name, cfg, batches, dtype)
        reference = first if variant == "jaxnet-step" else _seq.build("jaxnet-step", name, cfg, batches[:1], dtype)[1]
        first_call, times = C.time_job(run, min_time=3.0, smoke=smoke)
    except _seq.Unavailable as e:
        return C.emit({"unavailable": str(e)})
    except Exception as e:  # a peer that fails here (torch.compile without a compiler) is reported, not fatal
        return C.emit({"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]})
    tokens = cfg["batch"] * cfg["time"] * steps
    C.emit(
        {
            "tokens_per_s": tokens / min(times),
            "tokens_per_s_median": tokens / sorted(times)[len(times) // 2],
            "first_call_s": first_call,
            "loss": first,
            "loss_diff": abs(first - reference),
        }
    )


def main() -> None:
    p = C.driver_parser(__doc__.splitlines()[0])
    p.add_argument("--models", default="transformer,lstm")
    p.add_argument("--variants", default=",".join(("jaxnet-step", "raw-jax-step", "torch-eager", "torch-compile")))
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    args = C.parse_or_work(p, worker)
    if args is None:
        return
    profile = args.profile or C.detect_profile()
    rounds = 1 if args.smoke else max(args.rounds, 1)
    models, variants = args.models.split(","), args.variants.split(",")
    jobs = {}
    for m in models:
        steps = 2 if args.smoke else STEPS[profile][m]
        for v in variants:
            jobs[f"{m}/{v}"] = ("sequence.py", [m, v, steps, int(args.smoke), args.dtype])
    t0 = time.perf_counter()
    raw = C.run_rounds(jobs, rounds, seed=args.seed, budget=args.budget)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    md = C.header(f"Sequence models: training-step throughput ({args.dtype}, {profile})", sys.argv)
    done = 1 + max((r["round"] for runs in raw.values() for r in runs), default=-1)
    md += f"- load average at the end: {load:.1f}; {done} of {rounds} round(s) in {time.perf_counter() - t0:.0f} s\n"
    for m in models:
        cfg = __import__("_seq").SMOKE[m] if args.smoke else __import__("_seq").MODELS[m]
        rows = []
        for v in variants:
            runs = raw[f"{m}/{v}"]
            ok = C.ok_rounds(runs)
            if not ok:
                why = (runs[0].get("unavailable") or runs[0].get("error")) if runs else "not run"
                rows.append([v, f"failed: {why}", "", ""])
                continue
            rows.append(
                [
                    v,
                    C.fmt(C.summary([r["tokens_per_s"] for r in ok]), ".4g"),
                    C.fmt(C.ratios(raw, f"{m}/{v}", f"{m}/raw-jax-step", "tokens_per_s"), ".3f"),
                    f"{max(r['loss_diff'] for r in ok):.1e}",
                ]
            )
        sizes = ", ".join(f"{k} {v}" for k, v in cfg.items())
        md += f"\n#### {m} ({sizes})\n\n" + C.markdown_table(
            ["variant", "tokens/s median [range]", "x raw-jax-step (per round)", "first loss - jaxnet's"], rows
        )
        md += "\n"
    C.write_outputs(args, raw, md)


if __name__ == "__main__":
    main()
