"""Data-parallel scaling: one global batch split over 1, 2, 4, 8 devices.

On a CPU the devices are the host's, made with ``--xla_force_host_platform_device_count``
(one process per device count, since the flag must be set before jax starts): they share
the same cores, so this measures what splitting and all-reducing costs, not a speed-up.
On a GPU machine the device counts are the powers of two up to the number of GPUs.

Variants: ``jaxnet`` (``make_parallel_train_step``) and ``raw-jax`` (the hand-written step of
``throughput.py`` jitted with the same shardings), both per-step loops over pre-sharded
batches (on a CPU each step is waited for: see ``build``). The table gives samples/s and the
ratio to one device, per round.

Usage::

    python benchmarks/parallel_scaling.py [--configs small,medium] [--devices 1,2,4,8] [--rounds 3]
"""

from __future__ import annotations

import statistics
import sys
import traceback

import _common as C

MIN_TIME = {"cpu": 0.5, "gpu": 0.3}


def _mesh_parts(devices: int):
    import jax
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    have = jax.devices()
    if len(have) < devices:
        raise RuntimeError(f"asked for {devices} devices, jax sees {len(have)}")
    mesh = Mesh(np.asarray(have[:devices]), ("data",))
    return mesh, NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec("data"))


def build(variant, cfg, steps, devices, dtype, x, y):
    import _variants as V
    import jax
    import jax.numpy as jnp

    mesh, rep, shard = _mesh_parts(devices)
    # XLA:CPU's all-reduce between host devices deadlocked (rendezvous timeout, abort) with several
    # steps in flight on a 2-core machine: on a CPU every step is waited for, at every device count
    # alike so that the ratios compare like with like.
    sync = jax.default_backend() == "cpu"
    wait = jax.block_until_ready if sync else (lambda t: t)
    xs = jnp.asarray(x, dtype).reshape(steps, cfg.batch, -1)
    ys = jnp.asarray(y).reshape(steps, cfg.batch)
    batches = [jax.device_put((xs[i], ys[i]), shard) for i in range(steps)]
    if variant == "jaxnet":
        try:
            from jaxnet.train import make_parallel_train_step, replicate
        except ImportError as e:
            raise V.Unavailable(f"jaxnet.train.parallel missing ({e})") from None
        model, opt, params, state, opt_state = V._jaxnet_parts(cfg, dtype)
        step = make_parallel_train_step(model, V.JAXNET_LOSS, opt, mesh=mesh)
        carry = list(replicate((params, state, opt_state), mesh))

        def run():
            p, s, o = carry
            for b in batches:
                p, s, o, m = wait(step(p, s, o, b, None))
            jax.block_until_ready((p, m))
            carry[:] = p, s, o

        return run
    params = V.raw_init(jax.random.PRNGKey(0), cfg.sizes, dtype)
    carry = list(jax.device_put((params, V.raw_adam_init(params)), rep))
    step = jax.jit(V.raw_step, in_shardings=(rep, rep, shard, shard), out_shardings=rep, donate_argnums=(0, 1))

    def run():
        p, o = carry
        for xb, yb in batches:
            p, o, loss = wait(step(p, o, xb, yb))
        jax.block_until_ready((p, loss))
        carry[:] = p, o

    return run


def worker(argv) -> None:
    import _variants as V

    variant, configs, devices, profile, dtype, smoke = argv
    C.jax_setup(dtype)
    out = {"configs": {}}
    for name in configs.split(","):
        cfg = C.get_config(name, profile)
        steps = C.steps_for(cfg, profile)
        x, y = C.make_data(cfg, steps)
        try:
            run = build(variant, cfg, steps, int(devices), dtype, x, y)
            _, times = C.time_job(run, min_time=MIN_TIME[profile], smoke=smoke == "1")
        except V.Unavailable as e:
            return C.emit({"unavailable": str(e)})
        except Exception as e:
            traceback.print_exc()
            out["configs"][name] = {"error": f"{type(e).__name__}: {e}"[:300]}
            continue
        out["configs"][name] = {"samples_per_s": steps * cfg.batch / statistics.median(times)}
    C.emit(out)


def gpu_count() -> int:
    import subprocess

    code = "import jax; print(len([d for d in jax.devices() if d.platform != 'cpu']))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    return int(out.strip().splitlines()[-1]) if out.strip() else 0


def main() -> None:
    p = C.driver_parser(__doc__.splitlines()[0])
    p.add_argument("--configs", default="small,medium")
    p.add_argument("--devices", default=None, help="comma-separated device counts (default 1,2,4,8 on a CPU)")
    p.add_argument("--variants", default="jaxnet,raw-jax")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    args = C.parse_or_work(p, worker)
    if args is None:
        return
    profile = args.profile or C.detect_profile()
    configs = ["smoke"] if args.smoke else args.configs.split(",")
    for c in configs:
        C.get_config(c, profile)
    if args.devices:
        counts = [int(d) for d in args.devices.split(",")]
    elif args.smoke:
        counts = [1, 2]
    elif profile == "gpu":
        n = gpu_count()
        counts = [d for d in (1, 2, 4, 8) if d <= n]
    else:
        counts = [1, 2, 4, 8]
    for c in configs:
        bad = [d for d in counts if C.get_config(c, profile).batch % d]
        if bad:
            p.error(f"config {c}'s batch is not divisible by device counts {bad}")
    variants = [v for v in args.variants.split(",") if v]
    rounds = 1 if args.smoke else args.rounds
    smoke = "1" if args.smoke else "0"
    jobs = {
        f"{v}@{d}": ("parallel_scaling.py", [v, ",".join(configs), d, profile, args.dtype, smoke])
        for v in variants
        for d in counts
    }

    def env_of(name):
        if profile == "gpu":
            return {}
        d = name.split("@")[1]
        return {"XLA_FLAGS": f"--xla_force_host_platform_device_count={d}", "JAX_PLATFORMS": "cpu"}

    print(f"parallel scaling: {len(jobs)} jobs x {rounds} rounds ({profile})", flush=True)
    what = "host (CPU) devices sharing the same cores" if profile == "cpu" else "GPUs"
    head = C.header(f"Data-parallel scaling over {what} ({args.dtype})", sys.argv)

    def render(res):
        return head + "\n" + table(res, configs, variants, counts)

    results = C.run_rounds(
        jobs,
        rounds,
        seed=args.seed,
        env_of=env_of,
        budget=args.budget,
        on_progress=lambda res: C.write_outputs(args, res, render(res), echo=False),
    )
    C.write_outputs(args, results, render(results))


def table(results, configs, variants, counts) -> str:
    def per_round(job, c):
        return {
            r["round"]: r["configs"][c]["samples_per_s"]
            for r in C.ok_rounds(results.get(job, []))
            if "samples_per_s" in r["configs"].get(c, {})
        }

    rows = []
    for c in configs:
        for v in variants:
            base = per_round(f"{v}@{counts[0]}", c)
            for d in counts:
                cur = per_round(f"{v}@{d}", c)
                if not cur:
                    runs = results.get(f"{v}@{d}", [])
                    why = (
                        (
                            runs[0].get("unavailable")
                            or runs[0].get("error")
                            or runs[0].get("configs", {}).get(c, {}).get("error")
                        )
                        if runs
                        else "not run"
                    )
                    rows.append([c, v, d, why, ""])
                    continue
                rel = C.summary([cur[i] / base[i] for i in cur if i in base])
                rows.append([c, v, d, C.fmt(C.summary(cur.values()), ".4g"), C.fmt(rel, ".2f")])
    return C.markdown_table(["config", "variant", "devices", "samples/s", f"× {counts[0]} device(s)"], rows)


if __name__ == "__main__":
    main()
