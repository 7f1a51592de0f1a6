"""The training loops under test, one builder per variant.

Every builder has the signature ``build(cfg, steps, dtype, x, y) -> run`` where ``x, y``
are NumPy arrays holding ``steps * cfg.batch`` samples and ``run()`` trains on all of them
once (``steps`` optimizer steps) and blocks until the work is done. All variants train the
same model: ``Dense -> ReLU`` for each hidden width, a ``Dense`` output, softmax
cross-entropy on integer labels, Adam (lr 1e-3, b1 0.9, b2 0.999, eps 1e-8), no dropout.

Per-step variants get the mini-batches pre-cut, already on the device, in a fixed order
(the cheapest possible input pipeline, which flatters them); scan variants shuffle the
samples on the device every epoch and gather each batch inside the compiled program, and
so does ``raw-jax-step-shuffled``, the per-step loop doing the same work as the scans.
``raw-jax-scan-precut`` is the hand-written scan over the per-step variants' pre-cut batches
(no shuffle): the cheapest epoch there is, what jaxnet's epoch is held to with its shuffle
included; ``jaxnet-fit`` calls :func:`jaxnet.train.fit` for one epoch per call.
A builder raises :class:`Unavailable` when its library is not installed.
"""

from __future__ import annotations

import itertools

import numpy as np

LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-8
JAXNET_LOSS = "softmax_cross_entropy_with_integer_labels"


class Unavailable(Exception):
    """The variant's library (or the jaxnet part it needs) is missing."""


def _import(name: str):
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise Unavailable(f"{name} not installed ({e})") from None


def _keys(n: int = 64):
    import jax

    base = jax.random.PRNGKey(0)
    return itertools.cycle([jax.random.fold_in(base, e) for e in range(n)])


def _device_batches(cfg, steps, dtype, x, y):
    import jax.numpy as jnp

    xs = jnp.asarray(x, dtype).reshape(steps, cfg.batch, -1)
    ys = jnp.asarray(y).reshape(steps, cfg.batch)
    return [(xs[i], ys[i]) for i in range(steps)]


# ---------------------------------------------------------------------------------------------
# Hand-written JAX: the no-library reference


def raw_init(key, sizes, dtype):
    """LeCun-normal weights, zero biases, as a list of ``{"w", "b"}`` dicts."""
    import jax
    import jax.numpy as jnp

    params = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        w = jax.random.normal(jax.random.fold_in(key, i), (a, b), jnp.float32) / np.sqrt(a)
        params.append({"w": w.astype(dtype), "b": jnp.zeros((b,), dtype)})
    return params


def raw_loss(params, x, y):
    import jax
    import jax.numpy as jnp

    h = x
    for layer in params[:-1]:
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
    logits = h @ params[-1]["w"] + params[-1]["b"]
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def raw_adam_init(params):
    import jax
    import jax.numpy as jnp

    def zeros():
        return jax.tree_util.tree_map(jnp.zeros_like, params)  # two trees: both are donated

    return (jnp.zeros([], jnp.int32), zeros(), zeros())


def adam_update(params, opt, g):
    """Adam with bias correction, written out: ``p - lr m_hat / (sqrt(v_hat) + eps)``; ``opt = (count, mu, nu)``.

    The hand-written update every benchmark's raw JAX step shares (torch.optim.Adam's rule and defaults).
    """
    import jax
    import jax.numpy as jnp

    count, mu, nu = opt
    count = count + 1
    mu = jax.tree_util.tree_map(lambda m, g: B1 * m + (1 - B1) * g, mu, g)
    nu = jax.tree_util.tree_map(lambda v, g: B2 * v + (1 - B2) * g * g, nu, g)
    t = count.astype(jnp.float32)
    c1, c2 = 1 - B1**t, 1 - B2**t
    params = jax.tree_util.tree_map(
        lambda p, m, v: (p - LR * (m / c1) / (jnp.sqrt(v / c2) + EPS)).astype(p.dtype), params, mu, nu
    )
    return params, (count, mu, nu)


def raw_step(params, opt, x, y):
    """One Adam step: ``m_hat / (sqrt(v_hat) + eps)`` with bias correction, written out."""
    import jax

    loss, g = jax.value_and_grad(raw_loss)(params, x, y)
    params, opt = adam_update(params, opt, g)
    return params, opt, loss


def build_raw_step(cfg, steps, dtype, x, y):
    import jax

    params = raw_init(jax.random.PRNGKey(0), cfg.sizes, dtype)
    step = jax.jit(raw_step, donate_argnums=(0, 1))
    return _step_loop(step, [params, raw_adam_init(params)], _device_batches(cfg, steps, dtype, x, y))


def carry_loop(call, carry: list, batches):
    """``run()``: ``c = call(c, batch)`` over ``batches`` from the tuple ``carry``, waited for, stored back."""
    import jax

    def run():
        c = tuple(carry)
        for b in batches:
            c = call(c, b)
        jax.block_until_ready(c)
        carry[:] = c

    return run


def _step_loop(step, carry, batches):
    """``run()`` for a jitted ``step(params, opt_state, x, y) -> (params, opt_state, loss)`` over ``batches``."""
    return carry_loop(lambda c, b: step(*c, *b)[:2], carry, batches)


def build_raw_step_shuffled(cfg, steps, dtype, x, y):
    """The per-step loop doing the scan's work: a device-side shuffle per epoch, the gather inside the step."""
    import jax
    import jax.numpy as jnp

    params = raw_init(jax.random.PRNGKey(0), cfg.sizes, dtype)
    carry = [params, raw_adam_init(params)]
    n, b = steps * cfg.batch, cfg.batch
    shuffle = jax.jit(lambda key: jax.random.permutation(key, n).reshape(steps, b))
    step = jax.jit(lambda p, o, x, y, idx, i: raw_step(p, o, x[idx[i]], y[idx[i]]), donate_argnums=(0, 1))
    xd, yd, keys = jnp.asarray(x, dtype), jnp.asarray(y), _keys()

    def run():
        p, o = carry
        idx = shuffle(next(keys))
        for i in range(steps):
            p, o, loss = step(p, o, xd, yd, idx, i)
        jax.block_until_ready((p, loss))
        carry[:] = p, o

    return run


def raw_epoch(params, opt, x, y, key, *, steps, batch):
    """A shuffled epoch as one ``lax.scan`` over batch indices (gathered inside the program)."""
    import jax
    from jax import lax

    idx = jax.random.permutation(key, x.shape[0])[: steps * batch].reshape(steps, batch)

    def body(carry, i):
        p, o, loss = raw_step(*carry, x[i], y[i])
        return (p, o), loss

    (params, opt), losses = lax.scan(body, (params, opt), idx)
    return params, opt, losses.mean()


def build_raw_scan(cfg, steps, dtype, x, y):
    import functools

    import jax
    import jax.numpy as jnp

    params = raw_init(jax.random.PRNGKey(0), cfg.sizes, dtype)
    carry = [params, raw_adam_init(params)]
    epoch = jax.jit(functools.partial(raw_epoch, steps=steps, batch=cfg.batch), donate_argnums=(0, 1))
    xd, yd, keys = jnp.asarray(x, dtype), jnp.asarray(y), _keys()

    def run():
        p, o, loss = epoch(*carry, xd, yd, next(keys))
        jax.block_until_ready((p, loss))
        carry[:] = p, o

    return run


def raw_epoch_precut(params, opt, xs, ys):
    """An epoch as one ``lax.scan`` over batches cut before the call (``xs [steps, batch, ...]``): no shuffle."""
    from jax import lax

    def body(carry, batch):
        p, o, loss = raw_step(*carry, *batch)
        return (p, o), loss

    (params, opt), losses = lax.scan(body, (params, opt), (xs, ys))
    return params, opt, losses.mean()


def build_raw_scan_precut(cfg, steps, dtype, x, y):
    """The hand-written scan with the cheapest input: the same pre-cut batches every epoch, on the device."""
    import jax
    import jax.numpy as jnp

    params = raw_init(jax.random.PRNGKey(0), cfg.sizes, dtype)
    carry = [params, raw_adam_init(params)]
    epoch = jax.jit(raw_epoch_precut, donate_argnums=(0, 1))
    xs = jnp.asarray(x, dtype).reshape(steps, cfg.batch, *x.shape[1:])
    ys = jnp.asarray(y).reshape(steps, cfg.batch)

    def run():
        p, o, loss = epoch(*carry, xs, ys)
        jax.block_until_ready((p, loss))
        carry[:] = p, o

    return run


def fit_one_epoch(model, opt, data, batch_size, key, init, **kwargs):
    """``jaxnet.train.fit`` for one epoch from ``init = (params, state, opt_state)``, as a script calls it."""
    from jaxnet.train import fit

    return fit(
        model, JAXNET_LOSS, opt, data, epochs=1, batch_size=batch_size, key=key, init=init, progress=False, **kwargs
    )


def epoch_setup(config: str):
    """What the one-process epoch scripts share for an MLP config: data on the device, batches cut once,
    the hand-written params and Adam state, and jaxnet's model, params and state from the same seed.

    Returns a ``types.SimpleNamespace`` (``cfg, steps, b, n, x, y, xs, ys, rp, ro, model, params, state``).
    """
    import types

    import _common as C
    import jax
    import jax.numpy as jnp

    from jaxnet.nn import MLP

    C.jax_setup("float32")
    cfg = C.get_config(config, "cpu")
    steps, b = C.steps_for(cfg, "cpu"), cfg.batch
    xn, yn = C.make_data(cfg, steps)
    x, y = jnp.asarray(xn), jnp.asarray(yn)
    rp = raw_init(jax.random.PRNGKey(0), cfg.sizes, jnp.float32)
    model = MLP(list(cfg.sizes[1:]))
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, cfg.sizes[0]))
    return types.SimpleNamespace(
        cfg=cfg,
        steps=steps,
        b=b,
        n=x.shape[0],
        x=x,
        y=y,
        xs=x.reshape(steps, b, -1),
        ys=y.reshape(steps, b),
        rp=rp,
        ro=raw_adam_init(rp),
        model=model,
        params=params,
        state=state,
    )


# ---------------------------------------------------------------------------------------------
# jaxnet


def _jaxnet_parts(cfg, dtype):
    import jax

    _import("jaxnet")
    from jaxnet.nn import MLP

    try:
        from jaxnet.optim import adam
    except ImportError:
        raise Unavailable("jaxnet.optim.adam is missing") from None
    model = MLP(list(cfg.sizes[1:]))
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, cfg.sizes[0]))
    params = jax.tree_util.tree_map(lambda a: a.astype(dtype), params)
    opt = adam(LR)
    return model, opt, params, state, opt.init(params)


def build_jaxnet_step(cfg, steps, dtype, x, y):
    from jaxnet.train import make_train_step

    model, opt, params, state, opt_state = _jaxnet_parts(cfg, dtype)
    step = make_train_step(model, JAXNET_LOSS, opt)
    return carry_loop(
        lambda c, b: step(*c, b, None)[:3], [params, state, opt_state], _device_batches(cfg, steps, dtype, x, y)
    )


def build_jaxnet_scan(cfg, steps, dtype, x, y):
    import jax.numpy as jnp

    try:
        from jaxnet.train import make_train_epoch
    except ImportError:
        raise Unavailable("jaxnet.train.make_train_epoch is missing") from None
    model, opt, params, state, opt_state = _jaxnet_parts(cfg, dtype)
    epoch = make_train_epoch(model, JAXNET_LOSS, opt, batch_size=cfg.batch, n=steps * cfg.batch)
    data, keys = (jnp.asarray(x, dtype), jnp.asarray(y)), _keys()
    carry = [params, state, opt_state]

    def run():
        p, s, o, m = epoch(*carry, data, next(keys))
        bad = int(m["nonfinite_step"])  # blocks; after a non-finite step the guard skips the rest: not a timing
        if bad >= 0:
            raise FloatingPointError(
                f"jaxnet-scan: non-finite loss or params at step {bad} of the epoch "
                "(the engine's guard skipped the remaining steps)"
            )
        carry[:] = p, s, o

    return run


def build_jaxnet_fit(cfg, steps, dtype, x, y):
    """``jaxnet.train.fit`` for one epoch per call, resumed from the previous call's params (the first
    call compiles the program ``fit`` runs; later calls find it in jax's cache)."""
    import jax
    import jax.numpy as jnp

    model, opt, params, state, opt_state = _jaxnet_parts(cfg, dtype)
    data = (jnp.asarray(x, dtype), jnp.asarray(y))
    carry = [params, state, opt_state]
    calls = iter(range(10**9))

    def run():
        r = fit_one_epoch(model, opt, data, cfg.batch, jax.random.PRNGKey(next(calls)), tuple(carry))
        if r.history.stop_reason == "nonfinite":
            raise FloatingPointError("jaxnet-fit: non-finite loss or params (the guard stopped the epoch)")
        jax.block_until_ready(r.params)
        carry[:] = r.params, r.state, r.opt_state

    return run


# ---------------------------------------------------------------------------------------------
# JAX peers, each with optax's Adam


def _optax_loop(loss_of, params, cfg, steps, dtype, x, y):
    """A jitted per-step loop for peers whose params are a plain pytree: ``loss_of(params, x, y)``."""
    import jax

    optax = _import("optax")
    tx = optax.adam(LR, b1=B1, b2=B2, eps=EPS)

    def step(params, opt_state, xb, yb):
        loss, g = jax.value_and_grad(loss_of)(params, xb, yb)
        updates, opt_state = tx.update(g, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return _step_loop(
        jax.jit(step, donate_argnums=(0, 1)), [params, tx.init(params)], _device_batches(cfg, steps, dtype, x, y)
    )


def _xent(logits, y):
    optax = _import("optax")
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def build_flax_linen(cfg, steps, dtype, x, y):
    import jax
    import jax.numpy as jnp

    nn = _import("flax.linen")

    class Net(nn.Module):
        sizes: tuple

        @nn.compact
        def __call__(self, h):
            for s in self.sizes[:-1]:
                h = nn.relu(nn.Dense(s, dtype=dtype, param_dtype=dtype)(h))
            return nn.Dense(self.sizes[-1], dtype=dtype, param_dtype=dtype)(h)

    net = Net(tuple(cfg.sizes[1:]))
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, cfg.sizes[0]), dtype))["params"]
    return _optax_loop(lambda p, xb, yb: _xent(net.apply({"params": p}, xb), yb), params, cfg, steps, dtype, x, y)


def build_haiku(cfg, steps, dtype, x, y):
    import jax
    import jax.numpy as jnp

    hk = _import("haiku")
    net = hk.without_apply_rng(hk.transform(lambda h: hk.nets.MLP(list(cfg.sizes[1:]))(h)))
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, cfg.sizes[0]), jnp.float32))
    params = jax.tree_util.tree_map(lambda a: a.astype(dtype), params)
    return _optax_loop(lambda p, xb, yb: _xent(net.apply(p, xb), yb), params, cfg, steps, dtype, x, y)


def build_stax(cfg, steps, dtype, x, y):
    import jax

    stax = _import("jax.example_libraries.stax")
    layers = []
    for s in cfg.sizes[1:-1]:
        layers += [stax.Dense(s), stax.Relu]
    init_fn, apply_fn = stax.serial(*layers, stax.Dense(cfg.sizes[-1]))
    _, params = init_fn(jax.random.PRNGKey(0), (-1, cfg.sizes[0]))
    params = jax.tree_util.tree_map(lambda a: a.astype(dtype), params)
    return _optax_loop(lambda p, xb, yb: _xent(apply_fn(p, xb), yb), params, cfg, steps, dtype, x, y)


def build_equinox(cfg, steps, dtype, x, y):
    import jax

    eqx = _import("equinox")
    optax = _import("optax")
    widths = set(cfg.sizes[1:-1])
    if len(widths) != 1:
        raise Unavailable("equinox.nn.MLP needs equal hidden widths")
    model = eqx.nn.MLP(
        cfg.sizes[0], cfg.sizes[-1], widths.pop(), len(cfg.sizes) - 2, activation=jax.nn.relu, key=jax.random.PRNGKey(0)
    )
    model = jax.tree_util.tree_map(lambda a: a.astype(dtype) if eqx.is_array(a) else a, model)
    tx = optax.adam(LR, b1=B1, b2=B2, eps=EPS)

    def loss_fn(model, xb, yb):
        return _xent(jax.vmap(model)(xb), yb)

    @eqx.filter_jit(donate="all")
    def step(model, opt_state, xb, yb):
        loss, g = eqx.filter_value_and_grad(loss_fn)(model, xb, yb)
        updates, opt_state = tx.update(g, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, loss

    batches = _device_batches(cfg, steps, dtype, x, y)
    carry = [model, tx.init(eqx.filter(model, eqx.is_array))]

    def run():
        m, o = carry
        for xb, yb in batches:
            m, o, loss = step(m, o, xb, yb)
        jax.block_until_ready((eqx.filter(m, eqx.is_array), loss))
        carry[:] = m, o

    return run


def build_flax_nnx(cfg, steps, dtype, x, y):
    import jax

    nnx = _import("flax.nnx")
    optax = _import("optax")

    class Net(nnx.Module):
        def __init__(self, sizes, rngs):
            self.layers = nnx.List(
                [nnx.Linear(a, b, dtype=dtype, param_dtype=dtype, rngs=rngs) for a, b in itertools.pairwise(sizes)]
            )

        def __call__(self, h):
            for layer in self.layers[:-1]:
                h = jax.nn.relu(layer(h))
            return self.layers[-1](h)

    model = Net(cfg.sizes, nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(LR, b1=B1, b2=B2, eps=EPS), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, xb, yb):
        loss, g = nnx.value_and_grad(lambda m: _xent(m(xb), yb))(model)
        optimizer.update(model, g)
        return loss

    batches = _device_batches(cfg, steps, dtype, x, y)

    def run():
        for xb, yb in batches:
            loss = step(model, optimizer, xb, yb)
        jax.block_until_ready((nnx.state(model), loss))

    return run


# ---------------------------------------------------------------------------------------------
# PyTorch


def _torch_parts(cfg, steps, dtype, x, y):
    torch = _import("torch")
    nn = torch.nn
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    layers = []
    for a, b in itertools.pairwise(cfg.sizes[:-1]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(cfg.sizes[-2], cfg.sizes[-1])).to(dev, getattr(torch, dtype))
    opt = torch.optim.Adam(model.parameters(), lr=LR, betas=(B1, B2), eps=EPS)
    xs = torch.as_tensor(x).to(dev, getattr(torch, dtype)).reshape(steps, cfg.batch, -1)
    ys = torch.as_tensor(y).to(dev).long().reshape(steps, cfg.batch)
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    return torch, model, opt, [(xs[i], ys[i]) for i in range(steps)], sync


def build_torch_eager(cfg, steps, dtype, x, y):
    torch, model, opt, batches, sync = _torch_parts(cfg, steps, dtype, x, y)
    F = torch.nn.functional

    def run():
        for xb, yb in batches:
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
        sync()

    return run


def build_torch_compile(cfg, steps, dtype, x, y):
    torch, model, opt, batches, sync = _torch_parts(cfg, steps, dtype, x, y)
    F = torch.nn.functional
    loss_fn = torch.compile(lambda xb, yb: F.cross_entropy(model(xb), yb))
    opt_step = torch.compile(opt.step)

    def run():
        for xb, yb in batches:
            opt.zero_grad(set_to_none=True)
            loss_fn(xb, yb).backward()
            opt_step()
        sync()

    return run


VARIANTS = {
    "jaxnet-step": build_jaxnet_step,
    "jaxnet-scan": build_jaxnet_scan,
    "raw-jax-step": build_raw_step,
    "raw-jax-scan": build_raw_scan,
    "raw-jax-step-shuffled": build_raw_step_shuffled,
    "raw-jax-scan-precut": build_raw_scan_precut,
    "jaxnet-fit": build_jaxnet_fit,
    "flax-linen": build_flax_linen,
    "flax-nnx": build_flax_nnx,
    "equinox": build_equinox,
    "haiku": build_haiku,
    "stax": build_stax,
    "torch-eager": build_torch_eager,
    "torch-compile": build_torch_compile,
}
TORCH_VARIANTS = ("torch-eager", "torch-compile")
