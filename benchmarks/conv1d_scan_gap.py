"""Where the 1-D CNN's compiled epoch loses time against per-step jit: timing and compiled HLO side by side.

The network of ``conv_grad_layout.py`` (three ``Conv(32, (5,))`` + ReLU on 40x1, ``Dense10``,
batch 100, ``grad_layout="auto"``, SGD, softmax cross-entropy with integer labels) is run over
the same ``--steps`` batches three ways, the repeats interleaved, best wall-clock and best
process CPU time of each:

* ``jit``: one ``make_train_step`` call per batch (the reference);
* ``scan``: ``lax.scan`` over ``train_step_fn`` (the bare loop, batches pre-cut);
* ``epoch``: ``make_train_epoch`` (the loop plus shuffling, gathering and the non-finite guard).

It then prints, for the jitted step's program and for the scan body of the epoch, the number of
each top-level op kind that costs time (convolutions, dots, copies, transposes, fusions) and the
convolutions' ``dim_labels``, so that a layout or copy the loop adds shows up as a difference.

Run: ``python benchmarks/conv1d_scan_gap.py [--steps 8] [--repeats 15]``.
"""

from __future__ import annotations

import argparse
import collections
import re
import time

import jax
from jax import lax

from jaxnet import nn
from jaxnet.optim import sgd
from jaxnet.train import make_train_epoch, make_train_step, train_step_fn

LOSS = "softmax_cross_entropy_with_integer_labels"
BATCH = 100


def model_1d():
    layers = []
    for _ in range(3):
        layers += [nn.Conv(32, (5,)), nn.Relu()]
    return nn.serial(*layers, nn.Flatten(), nn.Dense(10))


def op_counts(hlo: str) -> dict:
    kinds = ("convolution", "dot", "copy", "transpose", "fusion")
    c = collections.Counter(m.group(1) for m in re.finditer(r"= \S+ ([\w-]+)\(", hlo))
    return {k: c[k] for k in kinds} | {"dim_labels": sorted(set(re.findall(r"dim_labels=([^,\s]+)", hlo)))}


def computation(hlo: str, name: str) -> str:
    """The text of one computation of an HLO module (its top-level instructions, fusions unopened)."""
    m = re.search(rf"^{re.escape(name)} .*?^\}}", hlo, re.S | re.M)
    assert m is not None, name
    return m.group(0)


def scan_body(hlo: str) -> str:
    """The body computation of the epoch's training loop: the ``while`` body holding the most convolutions."""
    bodies = [computation(hlo, b) for b in re.findall(r"while\(.*?body=(%[\w.-]+)", hlo)]
    return max(bodies, key=lambda text: text.count(" convolution("))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=15)
    a = ap.parse_args()
    model, opt = model_1d(), sgd(0.01)
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 40, 1))
    o0, n = opt.init(params), BATCH * a.steps
    x = jax.random.normal(jax.random.PRNGKey(1), (n, 40, 1))
    y = jax.random.randint(jax.random.PRNGKey(2), (n,), 0, 10)
    step = make_train_step(model, LOSS, opt, donate=False)
    epoch = make_train_epoch(model, LOSS, opt, batch_size=BATCH, n=n)
    bare = train_step_fn(model, LOSS, opt)
    xs, ys = x.reshape(a.steps, BATCH, 40, 1), y.reshape(a.steps, BATCH)
    batches = list(zip(xs, ys, strict=True))

    @jax.jit
    def scan(p, s, o, xs, ys):
        return lax.scan(lambda c, b: (bare(*c, b, None)[:3], None), (p, s, o), (xs, ys))[0]

    def stepped():
        p, s, o = params, state, o0
        for b in batches:
            p, s, o = step(p, s, o, b, None)[:3]
        return p

    runs = {
        "jit": stepped,
        "scan": lambda: scan(params, state, o0, xs, ys),
        "epoch": lambda: epoch(params, state, o0, (x, y), jax.random.PRNGKey(3)),
    }
    for fn in runs.values():
        jax.block_until_ready(fn())
    wall: dict = {k: [] for k in runs}
    cpu: dict = {k: [] for k in runs}
    for _ in range(a.repeats):
        for k, fn in runs.items():
            w, c = time.perf_counter(), time.process_time()
            jax.block_until_ready(fn())
            wall[k].append(time.perf_counter() - w)
            cpu[k].append(time.process_time() - c)
    print(f"jax {jax.__version__} on {jax.default_backend()}, {a.steps} steps of batch {BATCH}, best of {a.repeats}")
    ref_w, ref_c = min(wall["jit"]), min(cpu["jit"])
    for k in runs:
        w, c = min(wall[k]), min(cpu[k])
        print(f"{k:6s} wall {w * 1e3:7.1f} ms ({ref_w / w:4.2f}x jit)   cpu {c * 1e3:7.1f} ms ({ref_c / c:4.2f}x jit)")
    step_hlo = jax.jit(bare).lower(params, state, o0, batches[0], None).compile().as_text()
    epoch_hlo = epoch.lower(params, state, o0, (x, y), jax.random.PRNGKey(3)).compile().as_text()
    print("jitted step (entry):", op_counts(computation(step_hlo, "ENTRY")))
    print("epoch's scan body:", op_counts(scan_body(epoch_hlo)))


if __name__ == "__main__":
    main()
