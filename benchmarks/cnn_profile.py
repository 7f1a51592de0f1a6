"""Where XLA:CPU spends a CNN training step, and what closes the gap to PyTorch (issue 20, item 4).

Three modes, on the networks of ``cnn_epoch.py``:

* ``ops``: every convolution of the step alone (forward, input gradient, kernel gradient), as
  ``lax.conv_general_dilated``, as im2col + matmul (``_im2col.py``) and as PyTorch's oneDNN
  kernels, in GFLOP/s (``2 * multiply-adds / seconds``) against the square-matmul ceiling of
  both (the yardstick of ``matmul_rate.py``), all in one process;
* ``step``: the hand-written training step with ``lax`` convolutions, with im2col for every
  convolution and with im2col for the single-channel first layer only, timed in interleaved
  rounds in one process; the im2col forms' exactness against ``lax`` in float32 and float64;
  the convolutions XLA compiled into the step and whether bias and ReLU fuse into them;
* ``flags``: the same step under sets of ``XLA_FLAGS``, each in its own process.

Usage::

    python benchmarks/cnn_profile.py ops --batch 32
    python benchmarks/cnn_profile.py step --batch 256 --rounds 5
    python benchmarks/cnn_profile.py flags --batch 32
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]
import _common as C  # noqa: E402
import cnn_epoch as E  # noqa: E402
from _im2col import im2col_conv, small_kernel_conv, wgrad_im2col_conv  # noqa: E402

FLAG_SETS = {
    "default": "",
    "xnnpack": "--xla_cpu_use_xnnpack=true",
    "onednn": "--xla_cpu_use_onednn=true",
    "onednn-custom-call": "--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_custom_call=true",
    "ynn-conv": "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION",
    "xnn-conv": "--xla_cpu_use_xnnpack=true --xla_cpu_experimental_xnn_fusion_type="
    "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION",
    "no-multi-thread-eigen": "--xla_cpu_multi_thread_eigen=false",
    "fast-math (inexact)": "--xla_cpu_enable_fast_math=true",
}


def conv_layers(net: E.Net, batch: int):
    """``(name, x_shape, w_shape)`` of every convolution of the network."""
    spatial, cin, out = list(net.shape[:-1]), net.shape[-1], []
    for i, (f, k, pool) in enumerate(net.convs):
        out.append((f"conv{i}", (batch, *spatial, cin), (*(k,) * net.rank, cin, f)))
        cin = f
        if pool:
            spatial = [s // 2 for s in spatial]
    return out


def _median_time(fn, min_time=0.3):
    _, times = C.time_calls(fn, min_time=min_time, min_repeats=5, max_repeats=60)
    return statistics.median(times)


def mode_ops(args) -> str:
    import jax
    from jax import lax

    C.jax_setup("float32")
    net = E.NETS[args.net]
    key = jax.random.PRNGKey(0)
    rows = []

    def lax_conv(x, w):
        r = x.ndim - 2
        dn = ("NHWC", "HWIO", "NHWC") if r == 2 else ("NWC", "WIO", "NWC")
        return lax.conv_general_dilated(x, w, (1,) * r, "SAME", dimension_numbers=dn)

    try:
        import torch
        import torch.nn.functional as F
        from torch.nn import grad as tgrad
    except ImportError:
        torch = None
    mm = jax.jit(lambda a, b: a @ b)
    a = jax.random.normal(key, (1024, 1024))
    ceiling = {"jax": 2 * 1024**3 / _median_time(lambda: mm(a, a).block_until_ready()) / 1e9}
    if torch is not None:
        ta = torch.randn(1024, 1024)
        ceiling["torch"] = 2 * 1024**3 / _median_time(lambda: ta @ ta) / 1e9
    total = {"lax": 0.0, "im2col": 0.0, "torch": 0.0}
    for name, xs, ws in conv_layers(net, args.batch):
        x = jax.random.normal(key, xs)
        w = jax.random.normal(jax.random.fold_in(key, 1), ws) / np.sqrt(np.prod(ws[:-1]))
        g = jax.random.normal(jax.random.fold_in(key, 2), (*xs[:-1], ws[-1]))
        flops = 2 * int(np.prod(xs[:-1])) * int(np.prod(ws))
        kinds = ["forward", "kernel grad"] + (["input grad"] if name != "conv0" else [])
        for kind in kinds:
            cells = {}
            for impl, conv in (("lax", lax_conv), ("im2col", im2col_conv)):
                if kind == "forward":
                    f = jax.jit(conv)
                    fn = functools.partial(f, x, w)
                elif kind == "input grad":
                    f = jax.jit(lambda x, w, g, conv=conv: jax.vjp(lambda x: conv(x, w), x)[1](g)[0])
                    fn = functools.partial(f, x, w, g)
                else:
                    f = jax.jit(lambda x, w, g, conv=conv: jax.vjp(lambda w: conv(x, w), w)[1](g)[0])
                    fn = functools.partial(f, x, w, g)
                cells[impl] = _median_time(lambda fn=fn: jax.block_until_ready(fn()))
            if torch is not None:
                r = len(ws) - 2
                tx = torch.from_numpy(np.moveaxis(np.asarray(x), -1, 1).copy())
                tw = torch.from_numpy(np.moveaxis(np.asarray(w), (-1, -2), (0, 1)).copy())
                tg = torch.from_numpy(np.moveaxis(np.asarray(g), -1, 1).copy())
                pad = ws[0] // 2
                conv_t = F.conv2d if r == 2 else F.conv1d
                gi = tgrad.conv2d_input if r == 2 else tgrad.conv1d_input
                gw = tgrad.conv2d_weight if r == 2 else tgrad.conv1d_weight
                if kind == "forward":
                    tfn = functools.partial(conv_t, tx, tw, padding=pad)
                elif kind == "input grad":
                    tfn = functools.partial(gi, tx.shape, tw, tg, padding=pad)
                else:
                    tfn = functools.partial(gw, tx, tw.shape, tg, padding=pad)
                with torch.no_grad():
                    cells["torch"] = _median_time(tfn)
            for impl, t in cells.items():
                total[impl] += t
            rows.append(
                [
                    f"{name} {kind}",
                    f"x {'x'.join(map(str, xs))}, w {'x'.join(map(str, ws))}",
                    *(
                        f"{cells[i] * 1e3:.3g} ms, {flops / cells[i] / 1e9:.3g}" if i in cells else "—"
                        for i in ("lax", "im2col", "torch")
                    ),
                ]
            )
    rows.append(["all convolutions of a step", "", *(f"{total[i] * 1e3:.3g} ms" for i in ("lax", "im2col", "torch"))])
    table = C.markdown_table(
        ["op", "shapes", "lax.conv: ms, GFLOP/s", "im2col+matmul: ms, GFLOP/s", "PyTorch (oneDNN): ms, GFLOP/s"], rows
    )
    ceil = ", ".join(f"{k} {v:.3g} GFLOP/s" for k, v in ceiling.items())
    return (
        f"#### Convolutions of the {args.net} step alone, batch {args.batch} (float32)\n\n"
        f"Square 1024 matmul ceiling: {ceil}.\n\n{table}\n"
    )


def _max_rel(a, b) -> float:
    import jax

    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return max(
        float(np.max(np.abs(np.asarray(u, np.float64) - np.asarray(v, np.float64))))
        / max(float(np.max(np.abs(np.asarray(v, np.float64)))), 1e-30)
        for u, v in zip(la, lb, strict=True)
    )


def exactness(net: E.Net, batch: int) -> list:
    """Largest relative difference of logits and gradients, im2col vs lax, in float32 and float64."""
    import jax
    import jax.numpy as jnp

    out = []
    x, y = E.make_data(net, batch, 1)
    for dtype in ("float32", "float64"):
        p = jax.tree_util.tree_map(lambda a, dtype=dtype: jnp.asarray(a, dtype), E.np_params(net))
        xd = jnp.asarray(x, dtype)
        grad = jax.jit(jax.grad(E.raw_loss), static_argnums=(3, 4))
        logits = jax.jit(E.raw_logits, static_argnums=(2, 3))
        ref_l, ref_g = logits(p, xd, net, None), grad(p, xd, y, net, None)
        forms = (("im2col", im2col_conv), ("im2col first layer", small_kernel_conv),
                 ("lax + im2col kernel grad", wgrad_im2col_conv))  # fmt: skip
        for name, conv in forms:
            out.append(
                [
                    name,
                    dtype,
                    f"{_max_rel(logits(p, xd, net, conv), ref_l):.2g}",
                    f"{_max_rel(grad(p, xd, y, net, conv), ref_g):.2g}",
                ]
            )
    return out


def hlo_convs(net: E.Net, batch: int) -> str:
    """The convolutions and custom calls in the compiled lax step, and which fusion holds each."""
    import jax

    params = jax.tree_util.tree_map(jax.numpy.asarray, E.np_params(net))
    x, y = E.make_data(net, batch, 1)
    step = jax.jit(functools.partial(E.raw_step, net=net))
    text = step.lower(params, E.raw_adam_init(params), x, y).compile().as_text()
    lines = [ln.strip() for ln in text.splitlines() if " convolution(" in ln or "custom-call(" in ln]
    fused = sum(1 for ln in text.splitlines() if "fusion" in ln and "convolution" in ln and "calls=" in ln)
    short = [ln.split(" = ")[0] + " = " + ln.split(" = ")[1].split("(")[0] + " " + ln.split("dim_labels=")[-1][:20]
             if "dim_labels=" in ln else ln[:120] for ln in lines]  # fmt: skip
    return f"{len(lines)} convolution/custom-call instructions ({fused} fusion lines mention one):\n" + "\n".join(
        f"    {s}" for s in short
    )


def mode_step(args) -> str:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    C.jax_setup("float32")
    net = E.NETS[args.net]
    steps = args.steps
    x, y = E.make_data(net, args.batch, steps)
    runners = {
        "lax.conv": E.build_raw_step(net, args.batch, x, y),
        "im2col (all convs)": E.build_raw_step(net, args.batch, x, y, conv=im2col_conv),
        "im2col (first layer)": E.build_raw_step(net, args.batch, x, y, conv=small_kernel_conv),
        "lax + im2col kernel grad": E.build_raw_step(net, args.batch, x, y, conv=wgrad_im2col_conv),
    }
    for r in runners.values():
        r.run()
        r.run()
    times = {k: [] for k in runners}
    rng = random.Random(0)
    for _ in range(args.rounds):
        for k in rng.sample(sorted(runners), len(runners)):
            t0 = time.perf_counter()
            runners[k].run()
            times[k].append((time.perf_counter() - t0) / steps)
    ref = times["lax.conv"]
    rows = [
        [
            k,
            C.fmt(C.summary([t * 1e3 for t in ts]), ".3g"),
            C.fmt(C.summary([a / b for a, b in zip(ref, ts, strict=True)]), ".2f"),
            f"{6 * net.macs() * args.batch / statistics.median(ts) / 1e9:.3g}",
        ]
        for k, ts in times.items()
    ]
    del jnp
    return (
        f"#### Hand-written {args.net} step, batch {args.batch}: lax.conv vs im2col ({args.rounds} rounds x {steps} "
        f"steps, one process)\n\n"
        + C.markdown_table(["convolution", "ms/step median [range]", "speed x lax.conv", "GFLOP/s"], rows)
        + "\n\nExactness against lax.conv (largest |difference| / largest |value| over logits, and over each "
        "gradient leaf):\n\n"
        + C.markdown_table(["form", "dtype", "logits", "gradients"], exactness(net, args.batch))
        + "\n\nCompiled lax step: "
        + hlo_convs(net, args.batch)
        + "\n"
    )


def flags_worker(argv) -> None:
    import jax

    C.jax_setup("float32")
    net, batch, steps = E.NETS[argv[0]], int(argv[1]), int(argv[2])
    x, y = E.make_data(net, batch, steps)
    try:
        probe = E.build_raw_step(net, batch, x[:batch], y[:batch])
        probe.run()
        loss1 = probe.loss()
        r = E.build_raw_step(net, batch, x, y)
        first, times = C.time_calls(r.run, min_time=2.0, min_repeats=3)
    except Exception as e:
        C.emit({"error": f"{type(e).__name__}: {str(e)[:300]}"})
        return
    C.emit({"ms_per_step": 1e3 * statistics.median(times) / steps, "loss1": loss1, "first_s": first,
            "backend": jax.default_backend()})  # fmt: skip


def mode_flags(args) -> str:
    steps = args.steps
    jobs = {name: ("cnn_profile.py", ["flagsworker", args.net, args.batch, steps]) for name in FLAG_SETS}
    env_of = lambda name: {"XLA_FLAGS": FLAG_SETS[name]}  # noqa: E731
    res = C.run_rounds(jobs, args.rounds, env_of=env_of, timeout=600)
    base = C.ok_rounds(res["default"])
    rows = []
    for name, flags in FLAG_SETS.items():
        good = C.ok_rounds(res[name])
        if not good:
            err = res[name][0].get("error", "?") if res[name] else "not run"
            rows.append([name, f"`{flags}`", "—", "—", "—", err.replace("|", "/")[:200]])
            continue
        ms = C.summary([r["ms_per_step"] for r in good])
        d = abs(good[0]["loss1"] - base[0]["loss1"]) if base else float("nan")
        rows.append(
            [
                name,
                f"`{flags}`" if flags else "",
                C.fmt(ms, ".3g"),
                C.fmt(C.ratios(res, "default", name, "ms_per_step"), ".2f"),
                f"{d:.1g}",
                "",
            ]
        )
    return (
        f"#### Hand-written {args.net} step, batch {args.batch}, under XLA_FLAGS (each in its own process, "
        f"{args.rounds} round(s) x {steps} steps)\n\n"
        + C.markdown_table(
            ["flags", "XLA_FLAGS", "ms/step", "speed x default", "|loss after 1 step - default|", "error"], rows
        )
        + "\n"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return flags_worker(sys.argv[3:])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("ops", "step", "flags"))
    p.add_argument("--net", default="cnn2d", choices=sorted(E.NETS))
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--markdown", default=None)
    args = p.parse_args()
    md = C.header(f"CNN profile: {args.mode}", sys.argv) + "\n" + {"ops": mode_ops, "step": mode_step,
                                                                      "flags": mode_flags}[args.mode](args)  # fmt: skip
    print(md)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(md + "\n")


if __name__ == "__main__":
    main()
