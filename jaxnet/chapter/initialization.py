"""Weight initialisation in a deep network (section 4.3.2).

Pushes a batch through 10 dense layers and records the spread (standard deviation) of every
layer's activations and of the gradient reaching every layer's weights, for N(0, 0.01), N(0, 1),
the chapter's 1/sqrt(n) (LeCun normal) and He's sqrt(2/n), with tanh and with ReLU. Too small a
scale makes the signal vanish layer after layer, too large a scale saturates tanh or explodes
ReLU; 1/sqrt(n) suits tanh and sqrt(2/n) suits ReLU. All-zero weights leave every hidden unit
identical however long one trains.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.chapter._common import accuracy, claim, digits, fit_digits, mlp, new_result, optimizer, pyplot, save
from jaxnet.nn import initializers as I

INITS = {
    "N(0, 0.01)": I.normal(0.01),
    "N(0, 1)": I.normal(1.0),
    "1/sqrt(n) (LeCun)": I.lecun_normal(),
    "sqrt(2/n) (He)": I.he_normal(),
}
ACTS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def spreads(init, activation: str, *, depth: int = 10, width: int = 256, batch: int = 256, seed: int = 0):
    """Per-layer std of the activations and of the weight gradients of a ``depth``-layer net.

    The loss is ``sum(out * r)`` for a fixed random ``r``, so the backward signal does not
    depend on a target. Returns ``(act_std, grad_std)``, two lists of ``depth`` floats.
    """
    key = jax.random.PRNGKey(seed)
    kx, kr, *kw = jax.random.split(key, depth + 2)
    ws = [init(k, (width, width)) for k in kw]
    x = jax.random.normal(kx, (batch, width))
    r = jax.random.normal(kr, (batch, width))
    f = ACTS[activation]

    def forward(ws):
        a, acts = x, []
        for w in ws:
            a = f(a @ w)
            acts.append(a)
        return jnp.sum(a * r), acts

    grads, acts = jax.grad(forward, has_aux=True)(ws)
    return [float(jnp.std(a)) for a in acts], [float(jnp.std(g)) for g in grads]


def zero_init_units(epochs: int = 5) -> dict:
    """Train ``MLP([32, 10], sigmoid)`` from all-zero weights on digits; how different its hidden units end up.

    Returns:
      ``{"unit_spread": max over units of max |w[:, j] - w[:, 0]|`` of the first layer (0 = identical),
      ``"weight_scale": max |w|`` (non-zero: the units did move, together), ``"accuracy"`` (validation).
    """
    va = digits()[1]
    model = mlp((32, 10), "sigmoid", w_init="zeros")
    fr = fit_digits(model, optimizer("sgd", learning_rate=0.1), epochs=epochs, lr=0.5)
    w = np.asarray(fr.params["dense_0"]["w"])
    return {
        "unit_spread": float(np.max(np.abs(w - w[:, :1]))),
        "weight_scale": float(np.max(np.abs(w))),
        "accuracy": accuracy(model, fr.params, fr.state, va),
    }


def run(quick: bool = True, out: str | None = None) -> dict:
    """Activation and gradient spread per layer for four inits and two activations; zero init's symmetry."""
    res = new_result("initialization", "4.3.2", "Initialisation in a deep network")
    width = 256 if quick else 1024
    table = {(n, a): spreads(i, a, width=width) for n, i in INITS.items() for a in ACTS}
    for (n, a), (acts, _) in table.items():
        res["numbers"][f"{a}, {n}: activation std layer 1 -> 10"] = [acts[0], acts[-1]]
    small, he = table[("N(0, 0.01)", "relu")][0], table[("sqrt(2/n) (He)", "relu")][0]
    res["claims"].append(
        claim(
            "with N(0, 0.01) the activations of 10 ReLU layers vanish; He's init keeps their spread",
            small[-1] / small[0] < 1e-6 and 0.2 < he[-1] / he[0] < 5,
            f"std ratio layer 10 / layer 1: N(0, 0.01) {small[-1] / small[0]:.1e}, He {he[-1] / he[0]:.2f}",
        )
    )
    big = table[("N(0, 1)", "tanh")][0]
    res["claims"].append(
        claim(
            "with N(0, 1) tanh saturates (activations pile up at +-1)",
            big[-1] > 0.9,
            f"tanh activation std at layer 10: {big[-1]:.3f} (1 means all at +-1)",
        )
    )
    z = zero_init_units(epochs=5 if quick else 20)
    res["numbers"]["zero init: spread between hidden units, max |w|, val accuracy"] = [
        z["unit_spread"],
        z["weight_scale"],
        z["accuracy"],
    ]
    res["claims"].append(
        claim(
            "all-zero init keeps every hidden unit identical",
            z["unit_spread"] == 0.0 and z["weight_scale"] > 0,
            f"after training: max difference between units {z['unit_spread']:.1e}, max |w| {z['weight_scale']:.3f}",
        )
    )
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    layers = np.arange(1, 11)
    for col, a in enumerate(ACTS):
        for n in INITS:
            acts, grads = table[(n, a)]
            axes[0, col].semilogy(layers, acts, "o-", label=n)
            axes[1, col].semilogy(layers, np.maximum(grads, 1e-30), "o-", label=n)
        axes[0, col].set_title(f"{a}: activation std per layer")
        axes[1, col].set_title(f"{a}: weight-gradient std per layer")
        axes[1, col].set_xlabel("layer")
    for ax in axes.ravel():
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    save(res, fig, out, "initialization.png", "Spread of activations and gradients over 10 layers for four inits.")
    return res
