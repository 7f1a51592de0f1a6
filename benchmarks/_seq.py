"""The sequence benchmark's two models, each written three times: jaxnet layers, hand-written JAX, PyTorch.

- ``transformer``: a causal byte-level language model, :func:`jaxnet.nn.transformer_lm` (learned
  positions, pre-norm blocks with LayerNorm, exact-erf GELU MLP of 4x the width, final LayerNorm,
  output tied to the embedding); next-token softmax cross-entropy over every position.
- ``lstm``: ``Embedding -> RNN(LSTMCell) -> Dense(vocab)`` over 100 time steps, next-token
  cross-entropy at every step.

All three forms take the same params (jaxnet's, built from ``PRNGKey(0)``; the hand-written JAX
step uses the same pytree, PyTorch gets them copied in, transposed where its layout differs) and
Adam with the constants of :mod:`_variants`. :func:`check_loss` compares each form's first loss
with jaxnet's on the same batch before anything is timed.

Builders have the signature ``build(name, steps, batches) -> (run, first_loss)``: ``run()`` does
``steps`` training steps over the batches (``[batch, time + 1]`` int32 token arrays) and blocks.
"""

from __future__ import annotations

import math

import numpy as np
from _variants import B1, B2, EPS, LR, adam_update, carry_loop

VOCAB = 256
MODELS = {
    # name: sizes, batch, time steps
    "transformer": {"d_model": 128, "layers": 2, "heads": 4, "batch": 16, "time": 128},
    "lstm": {"embed": 64, "hidden": 256, "batch": 32, "time": 100},
}
SMOKE = {
    "transformer": {"d_model": 16, "layers": 1, "heads": 2, "batch": 2, "time": 8},
    "lstm": {"embed": 8, "hidden": 16, "batch": 2, "time": 8},
}


def make_batches(cfg: dict, steps: int, seed: int = 0) -> np.ndarray:
    """``[steps, batch, time + 1]`` random int32 tokens."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, VOCAB, size=(steps, cfg["batch"], cfg["time"] + 1)).astype(np.int32)


# --- jaxnet -------------------------------------------------------------------------------------


def jaxnet_model(name: str, cfg: dict):
    from jaxnet import nn

    if name == "transformer":
        return nn.transformer_lm(VOCAB, cfg["d_model"], cfg["layers"], cfg["heads"], cfg["time"])
    return nn.serial(nn.Embedding(VOCAB, cfg["embed"]), nn.RNN(nn.LSTMCell(cfg["hidden"])), nn.Dense(VOCAB))


def jaxnet_params(name: str, cfg: dict, dtype: str = "float32"):
    """``(params, state)`` of the jaxnet model from ``PRNGKey(0)``, cast to ``dtype`` (the state is empty)."""
    import jax
    import jax.numpy as jnp

    _, params, state = jaxnet_model(name, cfg).init(jax.random.PRNGKey(0), (-1, cfg["time"]))
    return jax.tree_util.tree_map(lambda a: a.astype(jnp.dtype(dtype)), params), state


LOSS = "softmax_cross_entropy_with_integer_labels"


def build_jaxnet(name, cfg, batches, dtype="float32"):
    import jax.numpy as jnp

    from jaxnet.nn import get_loss
    from jaxnet.optim import adam
    from jaxnet.train import make_train_step

    model, opt = jaxnet_model(name, cfg), adam(LR)
    params, state = jaxnet_params(name, cfg, dtype)
    data = [(jnp.asarray(b[:, :-1]), jnp.asarray(b[:, 1:])) for b in batches]
    out, _ = model.apply(params, state, data[0][0], train=False)
    first = float(get_loss(LOSS)(out.astype(jnp.float32), data[0][1]))
    step = make_train_step(model, LOSS, opt)
    run = carry_loop(lambda c, b: step(*c, b, None)[:3], [params, state, opt.init(params)], data)
    return run, first


# --- by hand ------------------------------------------------------------------------------------


def _layer_norm(p, x):
    import jax

    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + 1e-5) * p["gamma"] + p["beta"]


def raw_transformer_logits(params, ids, cfg, attention=None):
    """The same function as ``transformer_lm`` on jaxnet's param pytree, written out.

    ``attention="cudnn"``: the attention by ``jax.nn.dot_product_attention(implementation="cudnn")``
    (a GPU with bf16/f16 only), the fused kernel jaxnet's own attention does not use.
    """
    import jax
    import jax.numpy as jnp

    emb = params["embedding"]["embedding"]
    b, t = ids.shape
    h = emb[ids] + params["positions"]["embedding"][:t]
    heads = cfg["heads"]
    hd = cfg["d_model"] // heads
    causal = jnp.tril(jnp.ones((t, t), bool))
    for i in range(cfg["layers"]):
        p = params[f"block_{i}"]
        u = _layer_norm(p["norm1"], h)
        a = p["attention"]
        q, k, v = ((u @ a[n]["w"] + a[n]["b"]).reshape(b, t, heads, hd) for n in ("query", "key", "value"))
        if attention == "cudnn":
            o = jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation="cudnn")
        else:
            logits = jnp.einsum("bthd,bshd->bhts", q, k).astype(jnp.float32) / math.sqrt(hd)
            w = jax.nn.softmax(jnp.where(causal, logits, -jnp.inf), axis=-1)
            o = jnp.einsum("bhts,bshd->bthd", w.astype(v.dtype), v)
        o = o.reshape(b, t, heads * hd)
        h = h + o @ a["out"]["w"] + a["out"]["b"]
        u = _layer_norm(p["norm2"], h)
        u = jax.nn.gelu(u @ p["mlp_in"]["w"] + p["mlp_in"]["b"], approximate=False)
        h = h + u @ p["mlp_out"]["w"] + p["mlp_out"]["b"]
    h = _layer_norm(params["norm"], h)
    return h @ emb.T


def raw_lstm_logits(params, ids, cfg):
    import jax
    import jax.numpy as jnp

    x = params["embedding_0"]["embedding"][ids]
    c = params["rnn_1"]
    hidden = cfg["hidden"]

    def cell(carry, x_t):
        h, s = carry
        i, f, g, o = jnp.split(x_t @ c["w_i"] + h @ c["w_h"] + c["b"], 4, axis=-1)
        s = jax.nn.sigmoid(f) * s + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(s)
        return (h, s), h

    zeros = jnp.zeros((ids.shape[0], hidden), x.dtype)
    _, hs = jax.lax.scan(cell, (zeros, zeros), jnp.swapaxes(x, 0, 1))
    d = params["dense_2"]
    return jnp.swapaxes(hs, 0, 1) @ d["w"] + d["b"]


def raw_loss(params, ids, targets, name, cfg, attention=None):
    import jax
    import jax.numpy as jnp

    if name == "transformer":
        logits = raw_transformer_logits(params, ids, cfg, attention)
    else:
        logits = raw_lstm_logits(params, ids, cfg)
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, targets[..., None], axis=-1))


def build_raw(name, cfg, batches, dtype="float32", attention=None):
    import functools

    import jax
    import jax.numpy as jnp

    loss_fn = functools.partial(raw_loss, name=name, cfg=cfg, attention=attention)

    def step(params, opt, ids, targets):
        loss, g = jax.value_and_grad(loss_fn)(params, ids, targets)
        params, opt = adam_update(params, opt, g)
        return params, opt, loss

    params = jaxnet_params(name, cfg, dtype)[0]
    data = [(jnp.asarray(b[:, :-1]), jnp.asarray(b[:, 1:])) for b in batches]
    first = float(loss_fn(params, *data[0]))
    zeros = lambda: jax.tree_util.tree_map(jnp.zeros_like, params)  # noqa: E731
    opt = (jnp.zeros([], jnp.int32), zeros(), zeros())
    jstep = jax.jit(step, donate_argnums=(0, 1))
    return carry_loop(lambda c, b: jstep(*c, *b)[:2], [params, opt], data), first


# --- PyTorch ------------------------------------------------------------------------------------


def torch_model(name: str, cfg: dict, params):
    """A ``torch.nn.Module`` computing the same function, with jaxnet's ``params`` copied in."""
    import torch

    nn, F = torch.nn, torch.nn.functional
    P = lambda a: nn.Parameter(torch.tensor(np.asarray(a)))  # noqa: E731

    def linear(p):
        lin = nn.Linear(*np.shape(p["w"]))
        lin.weight, lin.bias = P(np.asarray(p["w"]).T.copy()), P(p["b"])
        return lin

    def norm(p):
        ln = nn.LayerNorm(np.shape(p["gamma"])[0], eps=1e-5)
        ln.weight, ln.bias = P(p["gamma"]), P(p["beta"])
        return ln

    if name == "lstm":

        class LSTMLM(nn.Module):
            def __init__(self):
                super().__init__()
                c = params["rnn_1"]
                self.embed = P(params["embedding_0"]["embedding"])
                self.lstm = nn.LSTM(cfg["embed"], cfg["hidden"], batch_first=True)
                self.lstm.weight_ih_l0 = P(np.asarray(c["w_i"]).T.copy())
                self.lstm.weight_hh_l0 = P(np.asarray(c["w_h"]).T.copy())
                self.lstm.bias_ih_l0 = P(c["b"])
                self.lstm.bias_hh_l0 = P(np.zeros_like(np.asarray(c["b"])))
                self.head = linear(params["dense_2"])

            def forward(self, ids):
                return self.head(self.lstm(F.embedding(ids, self.embed))[0])

        return LSTMLM()

    heads, d = cfg["heads"], cfg["d_model"]

    class Block(nn.Module):
        def __init__(self, p):
            super().__init__()
            a = p["attention"]
            self.norm1, self.norm2 = norm(p["norm1"]), norm(p["norm2"])
            self.q, self.k, self.v, self.o = (linear(a[n]) for n in ("query", "key", "value", "out"))
            self.mlp_in, self.mlp_out = linear(p["mlp_in"]), linear(p["mlp_out"])

        def forward(self, h):
            b, t, _ = h.shape
            u = self.norm1(h)
            q, k, v = (f(u).view(b, t, heads, d // heads).transpose(1, 2) for f in (self.q, self.k, self.v))
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
            h = h + self.o(o)
            return h + self.mlp_out(F.gelu(self.mlp_in(self.norm2(h))))

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = P(params["embedding"]["embedding"])
            self.pos = P(params["positions"]["embedding"])
            self.blocks = nn.ModuleList([Block(params[f"block_{i}"]) for i in range(cfg["layers"])])
            self.norm = norm(params["norm"])

        def forward(self, ids):
            h = F.embedding(ids, self.embed) + self.pos[: ids.shape[1]]
            for blk in self.blocks:
                h = blk(h)
            return self.norm(h) @ self.embed.T

    return LM()


def build_torch(name, cfg, batches, dtype="float32", *, compile: bool):
    import torch

    torch.manual_seed(0)
    F = torch.nn.functional
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model = torch_model(name, cfg, jaxnet_params(name, cfg)[0]).to(dev, getattr(torch, dtype))
    opt = torch.optim.Adam(model.parameters(), lr=LR, betas=(B1, B2), eps=EPS)
    data = [(torch.as_tensor(b[:, :-1]).long().to(dev), torch.as_tensor(b[:, 1:]).long().to(dev)) for b in batches]
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)

    def loss_of(ids, targets):
        return F.cross_entropy(model(ids).reshape(-1, VOCAB).float(), targets.reshape(-1))

    with torch.no_grad():
        first = float(loss_of(*data[0]))
    loss_fn, opt_step = (torch.compile(loss_of), torch.compile(opt.step)) if compile else (loss_of, opt.step)

    def run():
        for ids, targets in data:
            opt.zero_grad(set_to_none=True)
            loss_fn(ids, targets).backward()
            opt_step()
        sync()

    return run, first


def build(variant: str, name: str, cfg: dict, batches, dtype: str = "float32"):
    """``(run, first_loss)`` of ``variant`` (one of :data:`VARIANTS`) in ``dtype`` (float32 or bfloat16)."""
    if variant == "jaxnet-step":
        return build_jaxnet(name, cfg, batches, dtype)
    if variant == "raw-jax-step":
        return build_raw(name, cfg, batches, dtype)
    if variant == "raw-jax-cudnn":
        if name != "transformer":
            raise Unavailable("raw-jax-cudnn: the transformer only (it swaps the attention)")
        import jax

        if jax.default_backend() != "gpu":
            raise Unavailable(f"raw-jax-cudnn: cuDNN attention needs a GPU, this is {jax.default_backend()}")
        return build_raw(name, cfg, batches, dtype, attention="cudnn")
    if variant in ("torch-eager", "torch-compile"):
        return build_torch(name, cfg, batches, dtype, compile=variant == "torch-compile")
    raise SystemExit(f"unknown variant {variant!r}; choose from {VARIANTS}")


class Unavailable(Exception):
    """A variant that does not apply to this model or machine."""


VARIANTS = ("jaxnet-step", "raw-jax-step", "raw-jax-cudnn", "torch-eager", "torch-compile")
