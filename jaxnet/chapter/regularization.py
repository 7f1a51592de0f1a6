"""L2 against L1 regularization (section 4.4.2): L1 drives many weights to (nearly) zero.

The same MLP is trained on the digits with an L2 penalty and with an L1 penalty on its
weights (not the biases); the histograms of the first layer's weights show L1's sparsity.
"""

from __future__ import annotations

import numpy as np

from jaxnet import optim as O
from jaxnet.chapter._common import claim, fit_digits, mlp, new_result, optimizer, pyplot, save

NEAR_ZERO = 1e-3


def l2(params):
    """``1e-3 * sum w^2`` over the weight matrices (``O.weights_only``)."""
    return O.l2_penalty(params, 1e-3, O.weights_only)


def l1(params):
    """``1e-3 * sum |w|`` over the weight matrices."""
    return O.l1_penalty(params, 1e-3, O.weights_only)


def first_layer_weights(epochs: int = 30) -> dict:
    """The first layer's weights after training with no penalty, L2 and L1: ``{label: (weights, val accuracy)}``."""
    model, opt = mlp((64, 10), "relu"), optimizer("sgd", learning_rate=0.05, momentum=0.9)
    out = {}
    for label, pen in (("none", None), ("L2", l2), ("L1", l1)):
        fr = fit_digits(model, opt, epochs=epochs, penalty=pen)
        out[label] = (np.asarray(fr.params["dense_0"]["w"]).ravel(), fr.history["val_accuracy"][-1])
    return out


def run(quick: bool = True, out: str | None = None) -> dict:
    """Weight histograms and the share of near-zero weights under each penalty."""
    res = new_result("regularization", "4.4.2", "L2 against L1")
    w = first_layer_weights(30 if quick else 100)
    share = {k: float(np.mean(np.abs(v) < NEAR_ZERO)) for k, (v, _) in w.items()}
    res["numbers"][f"share of first-layer weights with |w| < {NEAR_ZERO}"] = share
    res["numbers"]["validation accuracy"] = {k: a for k, (_, a) in w.items()}
    res["claims"].append(
        claim(
            "L1 yields more near-zero weights than L2",
            share["L1"] > 2 * share["L2"],
            f"|w| < {NEAR_ZERO}: L1 {share['L1']:.1%}, L2 {share['L2']:.1%}, none {share['none']:.1%}",
        )
    )
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    bins = np.linspace(-0.4, 0.4, 81)
    for k, (v, _) in w.items():
        ax.hist(v, bins=bins, histtype="step", lw=1.5, label=f"{k} ({share[k]:.0%} near 0)")
    ax.set_yscale("log")
    ax.set_xlabel("first-layer weight")
    ax.legend()
    save(res, fig, out, "regularization.png", "First-layer weights with no penalty, L2 and L1: L1's spike at zero.")
    return res
