"""XOR (section 4.1.3, figure 4.8): one neuron separates AND and OR but not XOR; a hidden layer does.

Logistic regression is trained on the truth tables of AND, OR and XOR; the chapter's hand-weighted
network reproduces XOR exactly; a small MLP learns XOR and its decision regions are drawn.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet import optim as O
from jaxnet.chapter._common import claim, new_result, pyplot, save
from jaxnet.nn import MLP, LogisticRegression, losses, xor_network

X = jnp.array([[0, 0], [0, 1], [1, 0], [1, 1]], jnp.float32)
TABLES = {"AND": [0, 0, 0, 1], "OR": [0, 1, 1, 1], "XOR": [0, 1, 1, 0]}
BCE = losses.binary_cross_entropy_with_logits


def _train_full_batch(model, y, *, steps: int, lr: float, seed: int = 0):
    _, params, state = model.init(jax.random.PRNGKey(seed), (-1, 2))
    opt = O.adam(lr)

    def loss(p):
        out, _ = model.apply(p, state, X, train=False)
        return BCE(out[:, 0], y)

    def body(carry, _):
        p, s = carry
        u, s = opt.update(jax.grad(loss)(p), s, p)
        return (O.apply_updates(p, u), s), None

    params = jax.jit(lambda p: jax.lax.scan(body, (p, opt.init(p)), None, length=steps)[0][0])(params)
    return params, state


def logistic_accuracies(steps: int = 2000) -> dict:
    """Training accuracy of logistic regression (one sigmoid neuron) on the AND, OR and XOR tables."""
    model = LogisticRegression(2)
    out = {}
    for name, t in TABLES.items():
        y = jnp.array(t, jnp.float32)
        params, state = _train_full_batch(model, y, steps=steps, lr=0.1)
        logits, _ = model.apply(params, state, X, train=False)
        out[name] = float(jnp.mean((logits[:, 0] > 0) == (y > 0.5)))
    return out


def learned_xor(hidden: int = 8, steps: int = 1000, seed: int = 0):
    """An MLP ``2 -> hidden (tanh) -> 1`` trained on XOR: ``(model, params, state, accuracy)``."""
    model = MLP([hidden, 1], "tanh")
    y = jnp.array(TABLES["XOR"], jnp.float32)
    params, state = _train_full_batch(model, y, steps=steps, lr=0.05, seed=seed)
    logits, _ = model.apply(params, state, X, train=False)
    return model, params, state, float(jnp.mean((logits[:, 0] > 0) == (y > 0.5)))


def run(quick: bool = True, out: str | None = None) -> dict:
    """Logistic regression on AND/OR/XOR, the hand-weighted net, a learned net and its decision regions."""
    res = new_result("xor", "4.1.3", "XOR needs a hidden layer")
    acc = logistic_accuracies(1000 if quick else 5000)
    res["numbers"]["logistic regression accuracy"] = acc
    hand, hp, hs = xor_network()
    hy, _ = hand.apply(hp, hs, X, train=False)
    hand_ok = np.array_equal(np.asarray(hy[:, 0]), np.array(TABLES["XOR"], np.float32))
    res["numbers"]["hand-weighted net output on 00,01,10,11"] = [float(v) for v in hy[:, 0]]
    model, params, state, learned = learned_xor(steps=1000 if quick else 3000)
    res["numbers"]["learned MLP (8 tanh units) accuracy"] = learned
    res["claims"].append(
        claim(
            "AND and OR are linearly separable, XOR is not",
            acc["AND"] == 1.0 and acc["OR"] == 1.0 and acc["XOR"] <= 0.75,
            f"logistic regression: AND {acc['AND']:.2f}, OR {acc['OR']:.2f}, XOR {acc['XOR']:.2f}",
        )
    )
    res["claims"].append(claim("the hand-weighted network computes XOR exactly", hand_ok, f"outputs {hy[:, 0]}"))
    res["claims"].append(claim("a learned hidden layer solves XOR", learned == 1.0, f"accuracy {learned:.2f}"))

    plt = pyplot()
    g = np.linspace(-0.5, 1.5, 151)
    gx, gy = np.meshgrid(g, g)
    grid = jnp.asarray(np.stack([gx.ravel(), gy.ravel()], 1), jnp.float32)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, (title, m, p, s) in zip(
        axes,
        (("hand-weighted (step units)", hand, hp, hs), (f"learned MLP, accuracy {learned:.2f}", model, params, state)),
        strict=False,
    ):
        o, _ = m.apply(p, s, grid, train=False)
        region = np.asarray(o[:, 0] > (0.5 if m is hand else 0.0)).reshape(gx.shape)
        ax.contourf(gx, gy, region, levels=[-0.5, 0.5, 1.5], colors=["#cfe0f5", "#f7d3c9"])
        for (a, b), t in zip(np.asarray(X), TABLES["XOR"], strict=False):
            ax.scatter(a, b, c="C3" if t else "C0", s=120, marker="o" if t else "s", edgecolors="k")
        ax.set_title(title)
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
    save(res, fig, out, "xor_regions.png", "XOR decision regions: the chapter's hand-weighted net and a learned MLP.")
    return res
