"""fit(..., mesh=data_mesh()) on 8 forced CPU devices equals the one-device run (issue 15 item 7)."""

import json
import os
import subprocess
import sys

import jax
import pytest

from jaxnet import train as T

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.slow
def test_fit_and_fit_ensemble_on_8_devices_equal_one_device():
    env = {**os.environ, "PYTHONPATH": os.path.dirname(HERE), "XLA_FLAGS": ""}
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "_data_parallel_child.py"), "--hlo"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    out = json.loads(line[len("RESULT ") :])
    assert out["devices"] == 8
    assert out["fit_params_diff"] < 1e-5  # float summation order only
    assert out["fit_loss"][0] == pytest.approx(out["fit_loss"][1], rel=1e-5)
    assert out["replicated"] and out["all_reduce"]
    assert out["ensemble_params_diff"] < 1e-5
    assert out["bad_batch"] == "fit: batch_size 12 must be a multiple of the mesh's 8 devices"


def test_mesh_argument_errors():
    x, y = jax.numpy.zeros((8, 2)), jax.numpy.zeros((8,), jax.numpy.int32)
    from jaxnet import nn
    from jaxnet import optim as O

    with pytest.raises(TypeError, match=r"fit: mesh must be a jax\.sharding\.Mesh such as data_mesh\(\), got str"):
        T.fit(
            nn.MLP([2]),
            "softmax_cross_entropy_with_integer_labels",
            O.sgd(0.1),
            (x, y),
            epochs=1,
            batch_size=4,
            key=jax.random.PRNGKey(0),
            mesh="data",
        )
    with pytest.raises(ValueError, match="fit: the mesh has no axis 'data'; its axes: \\('batch',\\)"):
        T.fit(
            nn.MLP([2]),
            "softmax_cross_entropy_with_integer_labels",
            O.sgd(0.1),
            (x, y),
            epochs=1,
            batch_size=4,
            key=jax.random.PRNGKey(0),
            mesh=T.data_mesh(axis="batch"),
        )
