"""One process of tests/test_train_multiprocess.py: ``python _multiprocess_child.py NPROC PID PORT DEVICES OUTDIR``.

Initialises JAX's distributed runtime on 127.0.0.1 (gloo collectives on the CPU), trains with
``fit(..., mesh=data_mesh())`` over every process's devices, writes a checkpoint from process 0,
reads it back in every process and prints one JSON line with what it holds.
"""

import hashlib
import json
import os
import sys

nproc, pid, port, devices, outdir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]

from jaxnet.train import distributed  # noqa: E402

info = distributed.initialize(
    f"127.0.0.1:{port}" if nproc > 1 else None, nproc, pid, cpu_devices=devices, cpu_collectives="gloo"
)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxnet import nn  # noqa: E402
from jaxnet import optim as O  # noqa: E402
from jaxnet import train as T  # noqa: E402

x = jax.random.normal(jax.random.PRNGKey(1), (128, 6))
y = (jnp.arange(128) % 3).astype(jnp.int32)
model = nn.MLP([16, 3])
r = T.fit(
    model,
    "softmax_cross_entropy_with_integer_labels",
    O.adam(1e-2),
    (x, y),
    epochs=3,
    batch_size=16,
    key=jax.random.PRNGKey(0),
    progress=False,
    mesh=T.data_mesh(),
)
params = distributed.to_host(r.params)
path = distributed.save_checkpoint_once(os.path.join(outdir, "ckpt"), params=r.params, opt_state=None, step=r.epoch)
_, like, _ = model.init(jax.random.PRNGKey(9), (-1, 6))
loaded = T.load_checkpoint(path, params=like).params
leaves = [np.asarray(a) for a in jax.tree_util.tree_leaves(params)]
same = all(np.array_equal(a, np.asarray(b)) for a, b in zip(leaves, jax.tree_util.tree_leaves(loaded), strict=True))
digest = hashlib.sha256(b"".join(a.tobytes() for a in leaves)).hexdigest()
print(
    "RESULT "
    + json.dumps(
        {
            "process": info.process_id,
            "processes": info.num_processes,
            "global_devices": info.global_devices,
            "local_devices": info.local_devices,
            "digest": digest,
            "loaded_equal": same,
            "params": [a.tolist() for a in leaves],
            "loss": r.history.records[-1]["loss"],
        }
    ),
    flush=True,
)
