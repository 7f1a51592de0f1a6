"""Batch normalization (section 4.3.3): trains at learning rates and from inits where the plain network fails.

The same 2-hidden-layer ReLU MLP is trained on the digits with plain SGD, with and without a
``BatchNorm`` after every hidden ``Dense``, over a range of learning rates, and once more from
a bad init (N(0, 0.01) weights). The learning rate is set in the optimizer state, so each model
compiles once for the whole sweep.
"""

from __future__ import annotations

import numpy as np

from jaxnet.chapter._common import claim, digits, fit_digits, mlp, new_result, optimizer, outcome, pyplot, save
from jaxnet.nn import initializers as I

RATES = (0.01, 0.1, 1.0, 3.0)
BAD_INIT = I.normal(0.01)  # one object, so that its model is built (and compiled) once


def sweep(rates=RATES, *, epochs: int = 5, w_init="lecun_normal", seed: int = 0) -> dict:
    """Validation accuracy per learning rate, without and with BatchNorm: ``{"plain": [...], "batchnorm": [...]}``."""
    va = digits()[1]
    out = {}
    opt = optimizer("sgd", learning_rate=0.1)
    for tag, bn in (("plain", False), ("batchnorm", True)):
        model = mlp((64, 64, 10), "relu", w_init=w_init, batchnorm=bn)
        out[tag] = [outcome(fit_digits(model, opt, epochs=epochs, seed=seed, lr=lr), model, va)[0] for lr in rates]
    return out


def run(quick: bool = True, out: str | None = None) -> dict:
    """Accuracy with and without BatchNorm over learning rates, and from a bad init."""
    res = new_result("batchnorm", "4.3.3", "Batch normalization")
    epochs = 5 if quick else 30
    good = sweep(epochs=epochs)
    bad = sweep((0.1,), epochs=epochs, w_init=BAD_INIT)
    res["numbers"]["learning rates"] = list(RATES)
    res["numbers"]["val accuracy, plain"] = good["plain"]
    res["numbers"]["val accuracy, BatchNorm"] = good["batchnorm"]
    res["numbers"]["N(0, 0.01) init, lr 0.1: plain, BatchNorm"] = [bad["plain"][0], bad["batchnorm"][0]]
    hi = RATES.index(3.0)
    res["claims"].append(
        claim(
            "batch norm trains at a learning rate where the plain network fails",
            good["batchnorm"][hi] > 0.9 and good["plain"][hi] < 0.5,
            f"lr {RATES[hi]}: BatchNorm {good['batchnorm'][hi]:.3f}, plain {good['plain'][hi]:.3f}",
        )
    )
    res["claims"].append(
        claim(
            "batch norm trains from a bad init (N(0, 0.01)) where the plain network does not",
            bad["batchnorm"][0] > 0.9 and bad["plain"][0] < 0.5,
            f"BatchNorm {bad['batchnorm'][0]:.3f}, plain {bad['plain'][0]:.3f}",
        )
    )
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for tag in ("plain", "batchnorm"):
        ax.semilogx(RATES, good[tag], "o-", label=tag)
    ax.scatter([0.1, 0.1], [bad["plain"][0], bad["batchnorm"][0]], marker="x", c=["C0", "C1"], s=80)
    ax.set_xlabel("learning rate (SGD)")
    ax.set_ylabel(f"validation accuracy after {epochs} epochs")
    ax.set_title("with and without BatchNorm (x: N(0, 0.01) init)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    save(res, fig, out, "batchnorm.png", "Validation accuracy over learning rates, with and without BatchNorm.")
    res["numbers"]["best lr, plain / BatchNorm"] = [RATES[int(np.argmax(good[t]))] for t in ("plain", "batchnorm")]
    return res
