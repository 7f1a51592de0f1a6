"""Training steps of small CNNs as one ``lax.scan`` (``make_train_epoch``) against one ``jax.jit`` call per step.

For each network, with ``grad_layout="autodiff"`` (JAX's own convolution gradients) and
``grad_layout="auto"`` (on the CPU, :func:`jaxnet.nn.conv_channels_last`), it times the same
optimizer steps over the same batches both ways, after a warm-up call; the repeats of the two
alternate, and it prints the best wall-clock time and the best process CPU time (all threads) of
each over ``--repeats`` (on a shared machine the CPU time is the steadier of the two):

* ``2-D``: ``Conv32-3x3 SAME, ReLU, MaxPool2, Conv64-3x3, ReLU, MaxPool2, Dense128, Dense10`` on
  28x28x1, batch 32 and 256;
* ``1-D``: three ``Conv(32, (5,))``, ReLU, on 40x1, then ``Dense10``, batch 100.

Run: ``python benchmarks/conv_grad_layout.py [--steps 8] [--repeats 10] [--only 1-D]``; the ratio is the scan's
speed relative to per-step jit (higher is better; 1.0 means the scan costs what the steps do).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

from jaxnet import nn
from jaxnet.optim import sgd
from jaxnet.train import make_train_epoch, make_train_step

LOSS = "softmax_cross_entropy_with_integer_labels"


def cnn_2d(gl):
    return nn.serial(
        nn.Conv(32, (3, 3), grad_layout=gl), nn.Relu(), nn.MaxPool((2, 2)),
        nn.Conv(64, (3, 3), grad_layout=gl), nn.Relu(), nn.MaxPool((2, 2)),
        nn.Flatten(), nn.Dense(128), nn.Relu(), nn.Dense(10),
    )  # fmt: skip


def cnn_1d(gl):
    layers = []
    for _ in range(3):
        layers += [nn.Conv(32, (5,), grad_layout=gl), nn.Relu()]
    return nn.serial(*layers, nn.Flatten(), nn.Dense(10))


def best(fns, repeats):
    """Best wall-clock and best process CPU time of each function, the repeats interleaved.

    Interleaving (jit, scan, jit, scan, ...) exposes both to the same load; timing all repeats of
    one before the other let a burst of load on a shared machine fall on one side only.
    """
    for fn in fns:
        jax.block_until_ready(fn())
    wall = [[] for _ in fns]
    cpu = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            w, c = time.perf_counter(), time.process_time()
            jax.block_until_ready(fn())
            wall[i].append(time.perf_counter() - w)
            cpu[i].append(time.process_time() - c)
    return [min(t) for t in wall], [min(t) for t in cpu]


def measure(build, input_shape, batch, steps, repeats, gl):
    model, opt = build(gl), sgd(0.01)
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, *input_shape))
    opt_state = opt.init(params)
    n = batch * steps
    x = jax.random.normal(jax.random.PRNGKey(1), (n, *input_shape))
    y = jax.random.randint(jax.random.PRNGKey(2), (n,), 0, 10)
    step = make_train_step(model, LOSS, opt, donate=False)
    batches = [(x[i * batch : (i + 1) * batch], y[i * batch : (i + 1) * batch]) for i in range(steps)]
    epoch = make_train_epoch(model, LOSS, opt, batch_size=batch, n=n)

    def stepped():
        p, s, o = params, state, opt_state
        for b in batches:
            p, s, o = step(p, s, o, b, None)[:3]
        return p

    def scanned():
        return epoch(params, state, opt_state, (x, y), jax.random.PRNGKey(3))[0]

    return best([stepped, scanned], repeats)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--only", default="", help="run only the networks whose name contains this, e.g. '1-D'")
    a = ap.parse_args()
    print(f"jax {jax.__version__} on {jax.default_backend()}, {a.steps} steps, best of {a.repeats}")
    print(
        f"{'network':22s} {'grad_layout':12s} {'jit/step ms':>12s} {'scan ms':>10s} {'scan speed':>11s}"
        f" {'cpu: jit ms':>12s} {'scan ms':>8s} {'speed':>6s}"
    )
    for name, build, shape, batch in [
        ("2-D CNN, batch 32", cnn_2d, (28, 28, 1), 32),
        ("2-D CNN, batch 256", cnn_2d, (28, 28, 1), 256),
        ("1-D CNN, batch 100", cnn_1d, (40, 1), 100),
    ]:
        if a.only not in name:
            continue
        for gl in ("autodiff", "auto"):
            (w_jit, w_scan), (c_jit, c_scan) = measure(build, shape, batch, a.steps, a.repeats, gl)
            print(
                f"{name:22s} {gl:12s} {w_jit * 1e3:12.1f} {w_scan * 1e3:10.1f} {w_jit / w_scan:10.2f}x"
                f" {c_jit * 1e3:12.1f} {c_scan * 1e3:8.1f} {c_jit / c_scan:5.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    jnp.zeros(())
    main()
