"""The CNN benchmarks run: cnn_step.py end to end (tiny, one round) and throughput.py's cnn config workers.

Timings are never asserted; these check the plumbing, that both steps train the same network
(the same compiled convolutions) and that variants without a CNN version say so.
"""

import json
import os
import re
import subprocess
import sys

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH)

import _common as C  # noqa: E402

NUMBER = r"[0-9][0-9.e+]*"


def test_cnn_step_end_to_end(tmp_path):
    out = tmp_path / "res"
    cmd = [sys.executable, os.path.join(BENCH, "cnn_step.py"), "--smoke", "--profile", "cpu"]
    cmd += ["--json", f"{out}.json", "--markdown", f"{out}.md"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    raw = json.loads((tmp_path / "res.json").read_text())["cnn"]
    assert sorted(raw["times"]) == ["jaxnet-cnn-step", "raw-lax-conv-step"]
    assert all(len(t) == 1 and t[0] > 0 for t in raw["times"].values())
    # Two forward convolutions, and per layer the input and kernel gradients (the first layer's input needs none).
    assert raw["programs"]["jaxnet-cnn-step"]["convolutions"] == raw["programs"]["raw-lax-conv-step"]["convolutions"]
    md = (tmp_path / "res.md").read_text()
    assert re.search(rf"^\| jaxnet-cnn-step \| {NUMBER} ", md, re.M), md


def _worker(capsys, args):
    import throughput

    throughput.worker(args)
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(C.RESULT_TAG)][-1]
    return json.loads(line[len(C.RESULT_TAG) :])


def test_throughput_cnn_config(capsys):
    import _cnn

    assert C.get_config("cnn", "cpu").macs == _cnn.MACS
    for variant in ("jaxnet-step", "raw-jax-step"):
        res = _worker(capsys, [variant, "cnn", "cpu", "float32", "1"])["configs"]["cnn"]
        assert res["samples_per_s"] > 0 and res["gflops"] > 0, res
    res = _worker(capsys, ["stax", "cnn", "cpu", "float32", "1"])["configs"]["cnn"]
    assert "no CNN version" in res["error"]
