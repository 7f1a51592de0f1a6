"""The benchmark scripts run end to end (tiny sizes, one round) and their statistics are right.

Timings are never asserted; these tests check that every driver starts its workers, reads
their results back, pairs rounds correctly and writes tables that hold numbers.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH)

import _common as C  # noqa: E402

NUMBER = r"[0-9][0-9.e+]*"


def run_script(tmp_path, script, *args):
    out = tmp_path / "res"
    cmd = [
        sys.executable,
        os.path.join(BENCH, script),
        "--smoke",
        "--profile",
        "cpu",
        "--json",
        str(out) + ".json",
        "--markdown",
        str(out) + ".md",
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(str(out) + ".json") as f:
        raw = json.load(f)
    return raw, (tmp_path / "res.md").read_text()


def test_throughput_driver_end_to_end(tmp_path):
    raw, md = run_script(tmp_path, "throughput.py", "--variants", "jaxnet-step", "--no-matmul")
    (rnd,) = raw["jaxnet-step"]
    assert "error" not in rnd and "unavailable" not in rnd, rnd
    res = rnd["configs"]["smoke"]
    assert res["samples_per_s"] > 0 and res["repeats"] >= 1
    # samples/s and ms/step describe the same timing: batch 8, so 8000 / ms == samples/s
    assert res["samples_per_s"] == pytest.approx(8e3 / res["step_ms"], rel=1e-9)
    assert re.search(rf"^\| jaxnet-step \| {NUMBER} ", md, re.M), md
    assert "- command: `python benchmarks/throughput.py --smoke" in md


def test_step_overhead_end_to_end(tmp_path):
    raw, md = run_script(tmp_path, "step_overhead.py")
    times, programs = raw["smoke"]["times"], raw["smoke"]["programs"]
    assert sorted(times) == ["jaxnet-step", "raw+1-vector", "raw+5-scalars", "raw-jax-step"]
    assert all(len(t) == 1 and t[0] > 0 for t in times.values())
    # what XLA compiled for the two real steps is reported: at least the parameter-update fusions
    assert all(programs[k]["fusions"] > 0 and programs[k]["bytes"] > 0 for k in ("raw-jax-step", "jaxnet-step"))
    for name in times:
        assert re.search(rf"^\| {re.escape(name)} \| {NUMBER} ", md, re.M), md


def worker_result(capsys, worker, args):
    """Run a worker in this process (fast; the drivers' process handling is tested above) and parse its line."""
    worker(args)
    line = [text for text in capsys.readouterr().out.splitlines() if text.startswith(C.RESULT_TAG)][-1]
    return json.loads(line[len(C.RESULT_TAG) :])


def test_scan_ensemble_and_parallel_workers(capsys):
    import ensemble_scaling
    import parallel_scaling
    import throughput

    res = worker_result(capsys, throughput.worker, ["raw-jax-scan", "smoke", "cpu", "float32", "1"])
    assert res["configs"]["smoke"]["samples_per_s"] > 0, res
    runs = {}
    for k in (1, 2):
        res = worker_result(
            capsys, ensemble_scaling.worker, ["jaxnet-ensemble", "smoke", str(k), "cpu", "float32", "1"]
        )
        assert res.get("step_ms", 0) > 0, res
        runs[f"jaxnet-ensemble@{k}"] = [dict(res, round=0)]
    md = ensemble_scaling.table(runs, ["jaxnet-ensemble"], [1, 2], 1)
    assert re.search(rf"^\| jaxnet-ensemble \| 1 \| {NUMBER} \| 1\.00 \|", md, re.M), md
    assert re.search(rf"^\| jaxnet-ensemble \| 2 \| {NUMBER} \| {NUMBER} \|", md, re.M), md
    res = worker_result(capsys, parallel_scaling.worker, ["jaxnet", "smoke", "1", "cpu", "float32", "1"])
    assert res["configs"]["smoke"]["samples_per_s"] > 0, res


def test_ratios_pair_the_same_rounds():
    results = {
        "a": [{"round": 0, "v": 2.0}, {"round": 1, "v": 6.0}, {"round": 2, "error": "boom"}],
        "b": [{"round": 0, "v": 1.0}, {"round": 1, "v": 2.0}, {"round": 2, "v": 5.0}],
    }
    s = C.ratios(results, "a", "b", "v")
    assert (s["median"], s["min"], s["max"], s["n"]) == (2.5, 2.0, 3.0, 2)
    assert C.fmt(s, ".2f") == "2.50 [2.00–3.00]"
    assert C.summary([]) is None and C.fmt(None) == "—"


def test_run_rounds_shuffles_and_drops_failed_jobs(tmp_path, monkeypatch):
    calls = []

    def fake_run_job(script, args, env=None, timeout=0):
        calls.append(args[0])
        return {"error": "missing"} if args[0] == "bad" else {"v": 1.0}

    monkeypatch.setattr(C, "run_job", fake_run_job)
    jobs = {name: ("x.py", [name]) for name in ("p", "q", "r", "s", "bad")}
    res = C.run_rounds(jobs, 4, seed=3, log=lambda *_: None)
    assert calls.count("bad") == 1 and all(calls.count(n) == 4 for n in "pqrs")
    orders = [tuple(calls[5 + 4 * i : 9 + 4 * i]) for i in range(3)]  # rounds 1-3, after the 5 jobs of round 0
    assert len(set(orders)) > 1  # the order changes between rounds
    assert [r["round"] for r in res["p"]] == [0, 1, 2, 3]


def test_config_flop_count():
    cfg = C.CONFIGS["medium"]
    assert cfg.weights == 784 * 1024 + 1024 * 1024 + 1024 * 10
    assert cfg.flops_per_sample == 6 * cfg.weights


def test_epoch_variants_and_the_epoch_table(capsys):
    # issue 16: the hand-written scan over pre-cut batches and a fit epoch run; the table pairs rounds
    import throughput

    for v in ("raw-jax-scan-precut", "jaxnet-fit"):
        res = worker_result(capsys, throughput.worker, [v, "smoke", "cpu", "float32", "1"])
        assert res["configs"]["smoke"]["samples_per_s"] > 0 and res["configs"]["smoke"]["first_call_s"] > 0, res

    def run(sps, first):
        return [{"round": 0, "configs": {"overhead": {"samples_per_s": sps, "first_call_s": first}}}]

    results = {
        "jaxnet-scan": run(120.0, 3.0),
        "jaxnet-fit": run(100.0, 2.0),
        "raw-jax-scan-precut": run(100.0, 1.0),
        "raw-jax-scan": run(60.0, 1.5),
        "raw-jax-step": run(80.0, 0.5),
    }
    md = throughput.epoch_table(results, ["overhead"], 1)
    assert "| jaxnet-scan / raw-jax-scan-precut (shuffle included vs none), overhead | ≥ 1.0 | 1.20 | met |" in md
    assert "| jaxnet-scan / raw-jax-scan (both shuffle every epoch), overhead |  | 2.00 | — |" in md
    assert "| jaxnet-scan / raw-jax-step (per-step loop, pre-cut), overhead | ≥ 1.3 | 1.50 | met |" in md
    assert "| compile + first call: jaxnet-fit / raw-jax-scan-precut, overhead | ≤ 1.5 | 2.00 | missed |" in md


@pytest.mark.parametrize("model", ["transformer", "lstm"])
def test_sequence_workers_train_the_same_function(capsys, model):
    """The hand-written transformer/LSTM steps start from jaxnet's params and give jaxnet's first loss."""
    import sequence

    for variant in ("jaxnet-step", "raw-jax-step"):
        res = worker_result(capsys, sequence.worker, [model, variant, "2", "1", "float32"])
        assert "error" not in res and "unavailable" not in res, res
        assert res["tokens_per_s"] > 0 and np.isfinite(res["loss"]), res
        assert res["loss_diff"] <= 1e-5 * max(1.0, abs(res["loss"])), res


def test_epoch_anatomy_counts_fusions_whiles_and_dots():
    import epoch_anatomy
    import jax
    import jax.numpy as jnp
    from jax import lax

    def f(a, b):  # one matrix product inside a loop of unknown trip count
        return lax.while_loop(lambda c: c[1] < jnp.sum(a), lambda c: (jnp.tanh(c[0] @ b) + 1, c[1] + 1), (a, 0.0))[0]

    a = jnp.ones((4, 4))
    counts = epoch_anatomy.hlo_counts(jax.jit(f).lower(a, a).compile())
    assert counts["whiles"] == 1 and counts["dots"] == 1, counts
    assert counts["hlo_ops"] > counts["fusions"] >= 1, counts
