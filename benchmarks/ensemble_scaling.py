"""Ensemble scaling: K vmapped members trained as one program, time per step against K = 1.

Variants (each K in its own process, interleaved over rounds):

* ``jaxnet-ensemble``: jaxnet's ensemble engine, the compiled program ``fit_ensemble`` runs
  (one shuffled epoch per call for all K members, per-sample weights, non-finite guard);
* ``raw-jax-vmap``: the hand-written JAX scan epoch of ``throughput.py`` under ``jax.vmap``;
* ``jaxnet-single`` (K = 1 only): one model with ``make_train_epoch``, no vmap at all.

The table gives ms per step (all members together), that time relative to the same
variant at K = 1 and to ``jaxnet-single``, and the member-steps per second.

Usage::

    python benchmarks/ensemble_scaling.py [--config overhead] [--members 1,2,4,8,16] [--rounds 3]
"""

from __future__ import annotations

import functools
import statistics
import sys
import traceback

import _common as C

MIN_TIME = {"cpu": 0.5, "gpu": 0.3}


def build_raw_vmap(cfg, steps, k, dtype, x, y):
    import _variants as V
    import jax
    import jax.numpy as jnp

    params = jax.vmap(lambda key: V.raw_init(key, cfg.sizes, dtype))(jax.random.split(jax.random.PRNGKey(0), k))
    carry = [params, jax.vmap(V.raw_adam_init)(params)]
    epoch = functools.partial(V.raw_epoch, steps=steps, batch=cfg.batch)
    epoch = jax.jit(jax.vmap(epoch, in_axes=(0, 0, None, None, 0)), donate_argnums=(0, 1))
    xd, yd = jnp.asarray(x, dtype), jnp.asarray(y)
    keys = V._keys()

    def run():
        p, o, loss = epoch(*carry, xd, yd, jax.random.split(next(keys), k))
        jax.block_until_ready((p, loss))
        carry[:] = p, o

    return run


def build_jaxnet_ensemble(cfg, steps, k, dtype, x, y):
    """jaxnet's ensemble engine, set up as ``fit_ensemble`` sets it up (no validation, no early stopping)."""
    import _variants as V
    import jax
    import jax.numpy as jnp

    try:
        from jaxnet.train import epoch as E
        from jaxnet.train.ensemble import member_weights, stack
    except ImportError as e:
        raise V.Unavailable(f"jaxnet ensembles missing ({e})") from None
    model, opt, *_ = V._jaxnet_parts(cfg, dtype)
    n = steps * cfg.batch
    key = jax.random.PRNGKey(0)
    keys = [jax.random.fold_in(key, m) for m in range(k)]
    inits = [model.init(jax.random.fold_in(km, 0), (-1, cfg.sizes[0]))[1:] for km in keys]
    inits = [(jax.tree_util.tree_map(lambda a: a.astype(dtype), p), s) for p, s in inits]
    ecfg = E.make_config(model, V.JAXNET_LOSS, opt, n=n, batch_size=cfg.batch)  # as fit_ensemble without subsets
    carry = stack([E.initial_carry(ecfg, p, s, opt.init(p)) for p, s in inits])
    w = member_weights(jax.random.fold_in(key, 1), k, n, None)
    train_keys = jnp.stack([jax.random.fold_in(km, 2) for km in keys])
    xd, yd = jnp.asarray(x, dtype), jnp.asarray(y)
    box = [carry, 0]

    def run():
        c, e = box
        es = jnp.arange(e, e + 1, dtype=jnp.int32)
        c, (logs, _ran) = E.run_members_jit(ecfg, c, xd, yd, w, None, train_keys, es, es >= 0)
        jax.block_until_ready((c.params, logs))
        box[:] = c, e + 1

    return run


def build_jaxnet_single(cfg, steps, k, dtype, x, y):
    import _variants as V

    if k != 1:
        raise ValueError("jaxnet-single is the one-model baseline: K = 1 only")
    return V.build_jaxnet_scan(cfg, steps, dtype, x, y)


VARIANTS = {
    "jaxnet-ensemble": build_jaxnet_ensemble,
    "raw-jax-vmap": build_raw_vmap,
    "jaxnet-single": build_jaxnet_single,
}


def worker(argv) -> None:
    import _variants as V

    variant, config, k, profile, dtype, smoke = argv
    C.jax_setup(dtype)
    cfg = C.get_config(config, profile)
    steps = C.steps_for(cfg, profile)
    x, y = C.make_data(cfg, steps)
    try:
        run = VARIANTS[variant](cfg, steps, int(k), dtype, x, y)
        first, times = C.time_job(run, min_time=MIN_TIME[profile], smoke=smoke == "1")
    except V.Unavailable as e:
        return C.emit({"unavailable": str(e)})
    except Exception as e:
        traceback.print_exc()
        return C.emit({"error": f"{type(e).__name__}: {e}"[:300]})
    C.emit({"step_ms": 1e3 * statistics.median(times) / steps, "first_call_s": first})


def main() -> None:
    p = C.driver_parser(__doc__.splitlines()[0])
    p.add_argument("--config", default="overhead")
    p.add_argument("--members", default="1,2,4,8,16", help="comma-separated ensemble sizes K")
    p.add_argument("--variants", default="jaxnet-ensemble,raw-jax-vmap,jaxnet-single")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    args = C.parse_or_work(p, worker)
    if args is None:
        return
    profile = args.profile or C.detect_profile()
    config = "smoke" if args.smoke else args.config
    C.get_config(config, profile)
    ks = [1, 2] if args.smoke else [int(k) for k in args.members.split(",")]
    variants = [v for v in args.variants.split(",") if v]
    for v in variants:
        if v not in VARIANTS:
            p.error(f"unknown variant {v!r}; choose from {list(VARIANTS)}")
    rounds = 1 if args.smoke else args.rounds
    smoke = "1" if args.smoke else "0"
    jobs = {}
    for v in variants:
        for k in [1] if v == "jaxnet-single" else ks:
            jobs[f"{v}@{k}"] = ("ensemble_scaling.py", [v, config, k, profile, args.dtype, smoke])
    print(f"ensemble scaling: {len(jobs)} jobs x {rounds} rounds", flush=True)
    head = C.header(f"Ensemble scaling ({C.get_config(config, profile).label()}, {args.dtype}, {profile})", sys.argv)

    def render(res):
        return head + "\n" + table(res, variants, ks, rounds)

    results = C.run_rounds(
        jobs,
        rounds,
        seed=args.seed,
        budget=args.budget,
        on_progress=lambda res: C.write_outputs(args, res, render(res), echo=False),
    )
    C.write_outputs(args, results, render(results))


def table(results, variants, ks, rounds) -> str:
    def per_round(job):
        return {r["round"]: r["step_ms"] for r in C.ok_rounds(results.get(job, []))}

    single = per_round("jaxnet-single@1")
    rows = []
    for v in variants:
        if v == "jaxnet-single":
            continue
        base = per_round(f"{v}@1")
        for k in ks:
            job = f"{v}@{k}"
            runs = results.get(job, [])
            cur = per_round(job)
            if not cur:
                rows.append(
                    [v, k, (runs[0].get("unavailable") or runs[0].get("error")) if runs else "not run", "", "", ""]
                )
                continue
            rel = C.summary([cur[i] / base[i] for i in cur if i in base])
            rel1 = C.summary([cur[i] / single[i] for i in cur if i in single])
            rate = C.summary([k * 1e3 / cur[i] for i in cur])
            rows.append(
                [v, k, C.fmt(C.summary(cur.values()), ".3g"), C.fmt(rel, ".2f"), C.fmt(rel1, ".2f"), C.fmt(rate, ".4g")]
            )
    if single:
        rows.append(["jaxnet-single", 1, C.fmt(C.summary(single.values()), ".3g"), "", "1", ""])
    head = ["variant", "K", "ms per step (all members)", "× same variant at K=1", "× jaxnet-single", "member-steps/s"]
    return C.markdown_table(head, rows)


if __name__ == "__main__":
    main()
