"""Two processes on 127.0.0.1 (2 CPU devices each, gloo) equal one process with 4 devices (issue 15 item 8)."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT = 420  # seconds for the whole launch; loopback only


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    return {**os.environ, "PYTHONPATH": os.path.dirname(HERE), "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"}


def launch(commands, cwd=None):
    """Start every command at once; wait for all (killing all on timeout); return their outputs."""
    procs = [
        subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=cwd)
        for c in commands
    ]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=TIMEOUT)
            outs.append((p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return outs


def _result(out):
    rc, stdout, stderr = out
    assert rc == 0, stderr[-3000:]
    return json.loads(next(ln for ln in stdout.splitlines() if ln.startswith("RESULT "))[len("RESULT ") :])


@pytest.mark.slow
def test_two_processes_hold_identical_params_equal_to_one_process_with_4_devices(tmp_path):
    child = os.path.join(HERE, "_multiprocess_child.py")
    port = str(free_port())
    two = [
        _result(o)
        for o in launch([[sys.executable, child, "2", str(i), port, "2", str(tmp_path / "two")] for i in range(2)])
    ]
    (one,) = [_result(o) for o in launch([[sys.executable, child, "1", "0", "0", "4", str(tmp_path / "one")]])]
    assert [r["process"] for r in two] == [0, 1]
    assert all(r["processes"] == 2 and r["global_devices"] == 4 and r["local_devices"] == 2 for r in two)
    assert one["processes"] == 1 and one["global_devices"] == 4
    assert two[0]["digest"] == two[1]["digest"]  # bit-identical params in both processes
    for a, b in zip(two[0]["params"], one["params"], strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    # written once by process 0, read back by both
    assert all(r["loaded_equal"] for r in two)
    assert sorted(os.listdir(tmp_path / "two")) == ["ckpt.npz"]


@pytest.mark.slow
def test_cli_two_processes_train_and_write_one_checkpoint(tmp_path):
    port = str(free_port())
    common = [
        "--data",
        "circle",
        "--samples",
        "400",
        "--hidden",
        "8",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--no-plot",
        "--quiet",
    ]
    runs = launch(
        [
            [
                sys.executable,
                "-m",
                "jaxnet.cli",
                "train",
                *common,
                "--out",
                str(tmp_path / "two"),
                "--devices",
                "2",
                "--num-processes",
                "2",
                "--process-id",
                str(i),
                "--coordinator",
                f"127.0.0.1:{port}",
            ]
            for i in range(2)
        ]
    )
    (single,) = launch(
        [[sys.executable, "-m", "jaxnet.cli", "train", *common, "--out", str(tmp_path / "one"), "--devices", "4"]]
    )
    for rc, _, err in [*runs, single]:
        assert rc == 0, err[-3000:]
    assert "test accuracy" in runs[0][1] and "test accuracy" not in runs[1][1]  # process 0 reports
    assert sorted(os.listdir(tmp_path / "two")) == ["checkpoint.npz", "history.json"]
    acc = [float(out.split("test accuracy: ")[1].split()[0]) for _, out, _ in (runs[0], single)]
    assert acc[0] == pytest.approx(acc[1], abs=1e-4)


def test_initialize_arguments_are_checked():
    import jax

    from jaxnet.train import distributed

    jax.devices()  # JAX has started in this test process
    with pytest.raises(ValueError, match=r"initialize: process_id must lie in \[0, 2\), got 2"):
        distributed.initialize("127.0.0.1:1234", 2, 2)
    with pytest.raises(ValueError, match="initialize: num_processes must be >= 1, got 0"):
        distributed.initialize("127.0.0.1:1234", 0, 0)
    with pytest.raises(ValueError, match=r"initialize: coordinator must be HOST:PORT, got '127\.0\.0\.1'"):
        distributed.initialize("127.0.0.1", 2, 0)
    with pytest.raises(ValueError, match="initialize: call it before any other JAX operation"):
        distributed.initialize(cpu_devices=jax.local_device_count() + 3)
    info = distributed.initialize()  # nothing asked: a single process, nothing started
    assert info.num_processes == 1 and info.process_id == 0 and distributed.is_main_process()
