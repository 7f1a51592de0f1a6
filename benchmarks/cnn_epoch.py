"""CNN training throughput: jaxnet's step and compiled epoch against hand-written JAX, Flax and PyTorch.

Three configs (float32, Adam lr 1e-3, softmax cross-entropy on integer labels, synthetic data)::

    cnn2d-b32 / cnn2d-b256   28x28x1 images: Conv32-3x3 SAME, ReLU, MaxPool2, Conv64-3x3 SAME, ReLU,
                             MaxPool2, Flatten, Dense128, ReLU, Dense10; batch 32 / 256
    cnn1d-b100               40x1 sequences: Conv16-k5, ReLU, Conv32-k5, ReLU, Conv64-k5, ReLU (SAME),
                             Flatten, Dense10; batch 100

Variants, each in its own process, in a new random order every round (see ``_common``):

* ``jaxnet-step``: ``make_train_step``, one jitted call per step over pre-cut device batches;
* ``jaxnet-epoch``: ``make_train_epoch``, one compiled ``lax.scan`` per epoch (device shuffle);
* ``jaxnet-fit``: ``fit(epochs=1, init=...)`` per timed call (the same compiled epoch plus fit's host work);
* ``jaxnet-epoch-autodiff``: the epoch with ``Conv(grad_layout="autodiff")`` (the gradient rule before);
* ``raw-step``: a hand-written ``lax.conv_general_dilated`` step with Adam written out, per-step loop;
* ``raw-scan``: the same step in a hand-written ``lax.scan`` epoch (device shuffle, in-program gather);
* ``flax-linen``: ``flax.linen`` modules with ``optax.adam``, per-step loop;
* ``torch-eager`` / ``torch-compile``: ``torch.nn`` (oneDNN on the CPU), ``torch.optim.Adam``.

Every variant starts from the SAME parameters (drawn once with NumPy, converted to each library's
layout: HWIO kernels, OIHW for PyTorch, and the first Dense layer's rows permuted to PyTorch's
channel-first flatten order). Before timing, each worker trains one step on batch 0 from those
parameters and reports the loss on batch 0 before and after it; the driver checks that every
variant agrees (the same function, the same update) and prints the largest difference.

Usage::

    python benchmarks/cnn_epoch.py --quick                 # a few minutes
    python benchmarks/cnn_epoch.py --rounds 3 --markdown out/cnn_epoch.md
    python benchmarks/cnn_epoch.py --configs cnn2d-b32 --variants jaxnet-step,jaxnet-epoch,raw-step
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import sys
from dataclasses import dataclass

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]
import _common as C  # noqa: E402
from _variants import B1, B2, EPS, JAXNET_LOSS, LR, Unavailable, _import, _keys, adam_update  # noqa: E402


@dataclass(frozen=True)
class Net:
    """A CNN: input shape (spatial..., channels), conv ``(features, kernel, pool)`` triples, hidden Dense widths."""

    shape: tuple
    convs: tuple
    dense: tuple
    classes: int = 10

    @property
    def rank(self) -> int:
        return len(self.shape) - 1

    def flat_shape(self) -> tuple:
        """(spatial..., channels) entering the first Dense layer."""
        spatial = list(self.shape[:-1])
        for _, _, pool in self.convs:
            if pool:
                spatial = [s // 2 for s in spatial]
        return (*spatial, self.convs[-1][0])

    def macs(self) -> int:
        """Multiply-adds per sample of the forward pass (convolutions and Dense layers)."""
        spatial, cin, total = list(self.shape[:-1]), self.shape[-1], 0
        for f, k, pool in self.convs:
            total += int(np.prod(spatial)) * k**self.rank * cin * f
            cin = f
            if pool:
                spatial = [s // 2 for s in spatial]
        widths = [int(np.prod(self.flat_shape())), *self.dense, self.classes]
        return total + sum(a * b for a, b in itertools.pairwise(widths))


NETS = {
    "cnn2d": Net((28, 28, 1), ((32, 3, True), (64, 3, True)), (128,)),
    "cnn1d": Net((40, 1), ((16, 5, False), (32, 5, False), (64, 5, False)), ()),
}
CONFIGS = {"cnn2d-b32": ("cnn2d", 32), "cnn2d-b256": ("cnn2d", 256), "cnn1d-b100": ("cnn1d", 100)}
# Steps per timed call (one epoch), full and --quick.
STEPS = {"cnn2d-b32": (32, 4), "cnn2d-b256": (8, 2), "cnn1d-b100": (32, 8)}
SMOKE_STEPS = 2


def np_params(net: Net, seed: int = 0) -> dict:
    """LeCun-normal kernels (HWIO / WIO) and Dense weights, small random biases; float32 NumPy."""
    rng = np.random.default_rng(seed)
    params, cin = {}, net.shape[-1]
    for i, (f, k, _) in enumerate(net.convs):
        fan_in = k**net.rank * cin
        w = rng.standard_normal((*(k,) * net.rank, cin, f)) / np.sqrt(fan_in)
        params[f"conv{i}"] = {"w": w.astype(np.float32), "b": (0.01 * rng.standard_normal(f)).astype(np.float32)}
        cin = f
    widths = [int(np.prod(net.flat_shape())), *net.dense, net.classes]
    for j, (a, b) in enumerate(itertools.pairwise(widths)):
        w = rng.standard_normal((a, b)) / np.sqrt(a)
        params[f"dense{j}"] = {"w": w.astype(np.float32), "b": (0.01 * rng.standard_normal(b)).astype(np.float32)}
    return params


def make_data(net: Net, batch: int, steps: int, seed: int = 0):
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((steps * batch, *net.shape), dtype=np.float32)
    y = rng.integers(0, net.classes, size=steps * batch).astype(np.int32)
    return x, y


# ---------------------------------------------------------------------------------------------
# Hand-written JAX


def raw_logits(params, x, net: Net, conv=None):
    """The network on ``lax.conv_general_dilated`` (or ``conv(h, w)`` when given: the im2col experiment)."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    dn = ("NHWC", "HWIO", "NHWC") if net.rank == 2 else ("NWC", "WIO", "NWC")
    h = x
    for i, (_, _, pool) in enumerate(net.convs):
        w = params[f"conv{i}"]["w"]
        if conv is None:
            h = lax.conv_general_dilated(h, w, (1,) * net.rank, "SAME", dimension_numbers=dn)
        else:
            h = conv(h, w)
        h = jax.nn.relu(h + params[f"conv{i}"]["b"])
        if pool:
            win = (1, *(2,) * net.rank, 1)
            h = lax.reduce_window(h, -jnp.inf, lax.max, win, win, "VALID")
    h = h.reshape(h.shape[0], -1)
    n_dense = len(net.dense) + 1
    for j in range(n_dense):
        h = h @ params[f"dense{j}"]["w"] + params[f"dense{j}"]["b"]
        if j < n_dense - 1:
            h = jax.nn.relu(h)
    return h


def xent(logits, y):
    import jax
    import jax.numpy as jnp

    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def raw_loss(params, x, y, net, conv=None):
    return xent(raw_logits(params, x, net, conv), y)


def raw_step(params, opt, x, y, *, net, conv=None):
    """One Adam step with bias correction, written out (as ``_variants.raw_step``)."""
    import jax

    loss, g = jax.value_and_grad(raw_loss)(params, x, y, net, conv)
    params, opt = adam_update(params, opt, g)
    return params, opt, loss


def raw_adam_init(params):
    import jax
    import jax.numpy as jnp

    return (jnp.zeros([], jnp.int32), *(jax.tree_util.tree_map(jnp.zeros_like, params) for _ in range(2)))


class Runner:
    """``run()`` trains one epoch and blocks; ``loss()`` is the model's loss on batch 0 with the current params."""

    def __init__(self, run, loss):
        self.run, self.loss = run, loss


def _jax_params(net):
    import jax
    import jax.numpy as jnp

    return jax.tree_util.tree_map(jnp.asarray, np_params(net))


def _batches(net, batch, x, y):
    import jax.numpy as jnp

    steps = x.shape[0] // batch
    xs = jnp.asarray(x).reshape(steps, batch, *net.shape)
    ys = jnp.asarray(y).reshape(steps, batch)
    return [(xs[i], ys[i]) for i in range(steps)]


def build_raw_step(net, batch, x, y, conv=None):
    import jax

    params = _jax_params(net)
    carry = [params, raw_adam_init(params)]
    step = jax.jit(functools.partial(raw_step, net=net, conv=conv), donate_argnums=(0, 1))
    batches = _batches(net, batch, x, y)

    def run():
        p, o = carry
        for xb, yb in batches:
            p, o, loss = step(p, o, xb, yb)
        jax.block_until_ready((p, loss))
        carry[:] = p, o

    loss_at = jax.jit(functools.partial(raw_loss, net=net, conv=conv))
    return Runner(run, lambda: float(loss_at(carry[0], *batches[0])))


def build_raw_scan(net, batch, x, y, conv=None):
    import jax
    import jax.numpy as jnp
    from jax import lax

    params = _jax_params(net)
    carry = [params, raw_adam_init(params)]
    steps = x.shape[0] // batch
    step = functools.partial(raw_step, net=net, conv=conv)

    def epoch(params, opt, x, y, key):
        idx = jax.random.permutation(key, x.shape[0])[: steps * batch].reshape(steps, batch)

        def body(c, i):
            p, o, loss = step(*c, x[i], y[i])
            return (p, o), loss

        (params, opt), losses = lax.scan(body, (params, opt), idx)
        return params, opt, losses.mean()

    epoch = jax.jit(epoch, donate_argnums=(0, 1))
    xd, yd, keys = jnp.asarray(x), jnp.asarray(y), _keys()

    def run():
        p, o, loss = epoch(*carry, xd, yd, next(keys))
        jax.block_until_ready((p, loss))
        carry[:] = p, o

    loss_at = jax.jit(functools.partial(raw_loss, net=net, conv=conv))
    return Runner(run, lambda: float(loss_at(carry[0], xd[:batch], yd[:batch])))


# ---------------------------------------------------------------------------------------------
# jaxnet


def jaxnet_model(net: Net, grad_layout: str | None = None):
    """The network in jaxnet layers; ``grad_layout`` is passed to every Conv when given."""
    from jaxnet import nn

    extra = {} if grad_layout is None else {"grad_layout": grad_layout}

    pool = nn.MaxPool((2,) * net.rank)
    layers = []
    for i, (f, k, p) in enumerate(net.convs):
        layers += [nn.Conv(f, (k,) * net.rank, name=f"conv{i}", **extra), nn.Relu()]
        if p:
            layers.append(pool)
    layers.append(nn.Flatten())
    for j, w in enumerate(net.dense):
        layers += [nn.Dense(w, name=f"dense{j}"), nn.Relu()]
    layers.append(nn.Dense(net.classes, name=f"dense{len(net.dense)}"))
    return nn.serial(*layers)


def _jaxnet_parts(net, grad_layout=None):
    import jax

    from jaxnet.optim import adam

    model, opt = jaxnet_model(net, grad_layout), adam(LR)
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, *net.shape))
    given = _jax_params(net)
    for name, sub in given.items():
        for k, v in sub.items():
            if params[name][k].shape != v.shape:
                raise ValueError(f"jaxnet {name}.{k}: shape {params[name][k].shape} != {v.shape}")
        params[name] = sub
    return model, opt, params, state


def _jaxnet_loss(model):
    import jax

    @jax.jit
    def f(params, state, x, y):
        out, _ = model.apply(params, state, x, key=None, train=False)
        return xent(out, y)

    return f


def build_jaxnet_step(net, batch, x, y):
    import jax

    from jaxnet.train import make_train_step

    model, opt, params, state = _jaxnet_parts(net)
    step = make_train_step(model, JAXNET_LOSS, opt)
    carry = [params, state, opt.init(params)]
    batches = _batches(net, batch, x, y)

    def run():
        c = tuple(carry)
        for b in batches:
            c = step(*c, b, None)[:3]
        jax.block_until_ready(c)
        carry[:] = c

    loss_at = _jaxnet_loss(model)
    return Runner(run, lambda: float(loss_at(carry[0], carry[1], *batches[0])))


def build_jaxnet_epoch(net, batch, x, y, grad_layout=None):
    import jax.numpy as jnp

    from jaxnet.train import make_train_epoch

    model, opt, params, state = _jaxnet_parts(net, grad_layout)
    epoch = make_train_epoch(model, JAXNET_LOSS, opt, batch_size=batch, n=x.shape[0])
    data, keys = (jnp.asarray(x), jnp.asarray(y)), _keys()
    carry = [params, state, opt.init(params)]

    def run():
        p, s, o, m = epoch(*carry, data, next(keys))
        bad = int(m["nonfinite_step"])  # blocks
        if bad >= 0:
            raise FloatingPointError(f"jaxnet-epoch: non-finite step {bad}")
        carry[:] = p, s, o

    loss_at = _jaxnet_loss(model)
    return Runner(run, lambda: float(loss_at(carry[0], carry[1], data[0][:batch], data[1][:batch])))


def build_jaxnet_fit(net, batch, x, y):
    import jax
    import jax.numpy as jnp

    from jaxnet.train import fit

    model, opt, params, state = _jaxnet_parts(net)
    data, keys = (jnp.asarray(x), jnp.asarray(y)), _keys()
    carry = [params, state, opt.init(params)]

    def run():
        res = fit(model, JAXNET_LOSS, opt, data, epochs=1, batch_size=batch, key=next(keys), init=tuple(carry),
                  progress=False)  # fmt: skip
        jax.block_until_ready((res.params, res.opt_state))
        carry[:] = res.params, res.state, res.opt_state

    loss_at = _jaxnet_loss(model)
    return Runner(run, lambda: float(loss_at(carry[0], carry[1], data[0][:batch], data[1][:batch])))


# ---------------------------------------------------------------------------------------------
# Flax linen with optax


def build_flax_linen(net, batch, x, y):
    import jax
    import jax.numpy as jnp

    nn = _import("flax.linen")
    optax = _import("optax")

    class Model(nn.Module):
        @nn.compact
        def __call__(self, h):
            for i, (f, k, pool) in enumerate(net.convs):
                h = nn.relu(nn.Conv(f, (k,) * net.rank, padding="SAME", name=f"conv{i}")(h))
                if pool:
                    h = nn.max_pool(h, (2,) * net.rank, strides=(2,) * net.rank)
            h = h.reshape(h.shape[0], -1)
            for j, w in enumerate(net.dense):
                h = nn.relu(nn.Dense(w, name=f"dense{j}")(h))
            return nn.Dense(net.classes, name=f"dense{len(net.dense)}")(h)

    model = Model()
    params = {
        name: {"kernel": jnp.asarray(sub["w"]), "bias": jnp.asarray(sub["b"])} for name, sub in np_params(net).items()
    }
    ref = model.init(jax.random.PRNGKey(0), jnp.zeros((1, *net.shape)))["params"]
    if jax.tree_util.tree_map(jnp.shape, ref) != jax.tree_util.tree_map(jnp.shape, params):
        raise ValueError("flax params do not match the shared ones")
    tx = optax.adam(LR, b1=B1, b2=B2, eps=EPS)

    def loss_of(p, xb, yb):
        return xent(model.apply({"params": p}, xb), yb)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(p, o, xb, yb):
        loss, g = jax.value_and_grad(loss_of)(p, xb, yb)
        updates, o = tx.update(g, o, p)
        return optax.apply_updates(p, updates), o, loss

    carry = [params, tx.init(params)]
    batches = _batches(net, batch, x, y)

    def run():
        p, o = carry
        for xb, yb in batches:
            p, o, loss = step(p, o, xb, yb)
        jax.block_until_ready((p, loss))
        carry[:] = p, o

    loss_at = jax.jit(loss_of)
    return Runner(run, lambda: float(loss_at(carry[0], *batches[0])))


# ---------------------------------------------------------------------------------------------
# PyTorch


def torch_model(net: Net, torch):
    """``torch.nn.Sequential`` of the network, loaded with the shared parameters (channels-first)."""
    nn = torch.nn
    conv, pool = (nn.Conv2d, nn.MaxPool2d) if net.rank == 2 else (nn.Conv1d, nn.MaxPool1d)
    params = np_params(net)
    layers, cin = [], net.shape[-1]
    for i, (f, k, p) in enumerate(net.convs):
        c = conv(cin, f, k, padding="same")
        w = params[f"conv{i}"]["w"]  # (*k, I, O) -> (O, I, *k)
        c.weight.data = torch.from_numpy(np.ascontiguousarray(np.moveaxis(w, (-1, -2), (0, 1))))
        c.bias.data = torch.from_numpy(params[f"conv{i}"]["b"].copy())
        layers += [c, nn.ReLU()]
        if p:
            layers.append(pool(2))
        cin = f
    layers.append(nn.Flatten())
    flat = net.flat_shape()
    widths = [int(np.prod(flat)), *net.dense, net.classes]
    for j, (a, b) in enumerate(itertools.pairwise(widths)):
        lin = nn.Linear(a, b)
        w = params[f"dense{j}"]["w"]
        if j == 0:  # rows in (spatial..., C) order -> PyTorch's (C, spatial...) flatten order
            w = np.moveaxis(w.reshape(*flat, b), -2, 0).reshape(a, b)
        lin.weight.data = torch.from_numpy(np.ascontiguousarray(w.T))
        lin.bias.data = torch.from_numpy(params[f"dense{j}"]["b"].copy())
        layers.append(lin)
        if j < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _build_torch(net, batch, x, y, compiled: bool):
    torch = _import("torch")
    F = torch.nn.functional
    model = torch_model(net, torch)
    opt = torch.optim.Adam(model.parameters(), lr=LR, betas=(B1, B2), eps=EPS)
    steps = x.shape[0] // batch
    xs = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1))).reshape(steps, batch, -1, *net.shape[:-1])
    ys = torch.from_numpy(y).long().reshape(steps, batch)
    batches = [(xs[i], ys[i]) for i in range(steps)]
    loss_fn = lambda xb, yb: F.cross_entropy(model(xb), yb)  # noqa: E731
    opt_step = opt.step
    if compiled:
        loss_fn, opt_step = torch.compile(loss_fn), torch.compile(opt.step)

    def run():
        for xb, yb in batches:
            opt.zero_grad(set_to_none=True)
            loss_fn(xb, yb).backward()
            opt_step()

    def loss():
        with torch.no_grad():
            return float(F.cross_entropy(model(batches[0][0]), batches[0][1]))

    return Runner(run, loss)


VARIANTS = {
    "jaxnet-step": build_jaxnet_step,
    "jaxnet-epoch": build_jaxnet_epoch,
    "jaxnet-fit": build_jaxnet_fit,
    # The epoch with Conv's plain autodiff gradients (jaxnet before the channels-last gradient rule).
    "jaxnet-epoch-autodiff": functools.partial(build_jaxnet_epoch, grad_layout="autodiff"),
    "raw-step": build_raw_step,
    "raw-scan": build_raw_scan,
    "flax-linen": build_flax_linen,
    "torch-eager": functools.partial(_build_torch, compiled=False),
    "torch-compile": functools.partial(_build_torch, compiled=True),
}


# ---------------------------------------------------------------------------------------------
# Worker and driver


def worker(argv) -> None:
    config, variant, steps, mode = argv[0], argv[1], int(argv[2]), argv[3]
    net_name, batch = CONFIGS[config]
    net = NETS[net_name]
    if not variant.startswith("torch"):
        C.jax_setup("float32")
    build = VARIANTS[variant]
    out = {"config": config, "variant": variant, "steps": steps, "batch": batch}
    try:
        x, y = make_data(net, batch, steps)
        if mode == "check":  # one step on batch 0 from the shared params
            r = build(net, batch, x[:batch], y[:batch])
            out["loss0"] = r.loss()
            r.run()
            out["loss1"] = r.loss()
        r = build(net, batch, x, y)
        first, times = C.time_calls(
            r.run,
            min_time=0.01 if mode == "smoke" else (1.0 if mode == "quick" else 3.0),
            min_repeats=1 if mode == "smoke" else (2 if mode == "quick" else 3),
        )
    except Unavailable as e:
        C.emit({**out, "unavailable": str(e)})
        return
    import statistics

    med = statistics.median(times)
    out.update(first_s=first, times=times, samples_per_s=steps * batch / med, ms_per_step=1e3 * med / steps)
    C.emit(out)


def main() -> None:
    p = C.driver_parser(__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer steps and one round: a few minutes")
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--render", default=None, help="only print the tables of an earlier run's --json file")
    p.add_argument("--label", default="", help="a note for the table title (e.g. the jaxnet commit)")
    args = C.parse_or_work(p, worker)
    if args is None:
        return
    configs, variants = args.configs.split(","), args.variants.split(",")
    for c in configs:
        if c not in CONFIGS:
            raise SystemExit(f"unknown config {c!r}; choose from {sorted(CONFIGS)}")
    for v in variants:
        if v not in VARIANTS:
            raise SystemExit(f"unknown variant {v!r}; choose from {sorted(VARIANTS)}")
    mode = "smoke" if args.smoke else ("quick" if args.quick else "full")
    rounds = 1 if (args.smoke or args.quick) else max(args.rounds, 1)

    def steps_of(c):
        return SMOKE_STEPS if args.smoke else STEPS[c][1 if args.quick else 0]

    def jobs(first: bool):
        return {
            f"{c}/{v}": ("cnn_epoch.py", [c, v, steps_of(c), "check" if first else mode])
            for c in configs
            for v in variants
        }

    if args.render:
        with open(args.render) as f:
            raw = json.load(f)
        return render(args, raw, configs, variants, mode, rounds, steps_of)
    env = {"OMP_NUM_THREADS": str(len(os.sched_getaffinity(0)))}
    save_to = args.json or "/tmp/cnn_epoch_last.json"

    def save(results):
        with open(save_to, "w") as f:
            json.dump(results, f)

    # Round 1 checks the losses; the job then also times.
    raw = C.run_rounds(jobs(True), 1, seed=args.seed, env_of=lambda _: env, timeout=1200, on_progress=save)
    if rounds > 1:
        more = C.run_rounds(jobs(False), rounds - 1, seed=args.seed + 1, env_of=lambda _: env, timeout=1200,
                            budget=args.budget)  # fmt: skip
        for k, rs in more.items():
            if C.ok_rounds(raw[k]):
                raw[k] += [dict(r, round=r["round"] + 1) for r in rs]
    save(raw)
    render(args, raw, configs, variants, mode, rounds, steps_of)


def render(args, raw, configs, variants, mode, rounds, steps_of) -> None:
    """The tables of a run's raw results (``raw``: job name -> list of per-round result dicts)."""
    md = C.header(f"CNN training throughput{(' — ' + args.label) if args.label else ''}", sys.argv)
    md += f"\n- mode: {mode}, {rounds} round(s); each variant in its own process; samples/s median [range]\n"
    for c in configs:
        net_name, batch = CONFIGS[c]
        net = NETS[net_name]
        rows, losses = [], {}
        for v in variants:
            rs = raw.get(f"{c}/{v}", [])
            good = C.ok_rounds(rs)
            if not good:
                status = (rs[0].get("unavailable") or rs[0].get("error", "?")) if rs else "not run"
                rows.append([v, "—", "—", "—", "—", "—", str(status)[:300].replace("|", "/")])
                continue
            if "loss0" in good[0]:
                losses[v] = (good[0]["loss0"], good[0]["loss1"])
            sps = C.summary([r["samples_per_s"] for r in good])
            rows.append(
                [
                    v,
                    C.fmt(sps, ".4g"),
                    C.fmt(C.summary([r["ms_per_step"] for r in good]), ".3g", spread=False),
                    C.fmt(C.ratios(raw, f"{c}/{v}", f"{c}/raw-step", "samples_per_s"), ".2f"),
                    C.fmt(C.ratios(raw, f"{c}/{v}", f"{c}/jaxnet-step", "samples_per_s"), ".2f"),
                    f"{6 * net.macs() * sps['median'] / 1e9:.3g}",
                    f"first call {good[0]['first_s']:.1f} s",
                ]
            )
        ref = losses.get("raw-step") or next(iter(losses.values()), None)
        check = ""
        if ref:
            d0 = max(abs(a - ref[0]) for a, _ in losses.values())
            d1 = max(abs(b - ref[1]) for _, b in losses.values())
            check = (
                f"loss on batch 0 before / after one step: {ref[0]:.6f} / {ref[1]:.6f} (raw-step); largest "
                f"difference over {len(losses)} variants {d0:.2g} / {d1:.2g}"
                + ("" if max(d0, d1) < 1e-4 else " — MISMATCH")
                + "; "
                + ", ".join(f"{v} {a:.6f}/{b:.6f}" for v, (a, b) in losses.items())
            )
        md += (
            f"\n#### {c} ({net_name} {'x'.join(map(str, net.shape))}, batch {batch}, {steps_of(c)} steps per call, "
            f"{6 * net.macs() / 1e6:.3g} MFLOP per sample)\n\n"
            + C.markdown_table(
                ["variant", "samples/s", "ms/step", "x raw-step", "x jaxnet-step", "GFLOP/s", "note"], rows
            )
            + f"\n\n{check}\n"
        )
    C.write_outputs(args, raw, md)


if __name__ == "__main__":
    main()
