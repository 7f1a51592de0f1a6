"""Optimizers (section 4.3.5): trajectories on an ill-conditioned quadratic and curves on the digits.

On ``f(w) = (w1^2 + 50 w2^2) / 2`` (condition number 50) plain gradient descent must use a
step small enough for the steep direction and so crawls along the shallow one; momentum and
Nesterov build up speed along it. On the digits the same MLP is trained with each optimizer:
SGD, momentum, Nesterov, Adagrad, RMSprop, Adam, and Adam handing over to SGD half-way.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet import optim as O
from jaxnet.chapter._common import claim, fit_digits, mlp, new_result, optimizer, pyplot, save

CURVATURE = jnp.array([1.0, 50.0])
START = jnp.array([-1.0, 0.6])
GD_RATE = 0.02  # below 2 / 50, the largest stable step for the steep direction


def quadratic(w):
    """``(w1^2 + 50 w2^2) / 2``, minimum 0 at the origin."""
    return 0.5 * jnp.sum(CURVATURE * w * w)


def quadratic_optimizers() -> dict:
    """The optimizers compared on the quadratic, by label (gradient descent's rate for the first three)."""
    return {
        "GD": O.sgd(GD_RATE),
        "momentum 0.9": O.sgd(GD_RATE, momentum=0.9),
        "Nesterov 0.9": O.sgd(GD_RATE, momentum=0.9, nesterov=True),
        "Adagrad": O.adagrad(0.5),
        "RMSprop": O.rmsprop(0.02),
        "Adam": O.adam(0.1),
    }


def trajectory(opt, steps: int = 300) -> np.ndarray:
    """The points ``w_0 .. w_steps`` of ``opt`` minimising :func:`quadratic` from ``START``, shape [steps + 1, 2]."""

    def body(carry, _):
        w, s = carry
        u, s = opt.update(jax.grad(quadratic)(w), s, w)
        w = O.apply_updates(w, u)
        return (w, s), w

    _, ws = jax.jit(lambda w: jax.lax.scan(body, (w, opt.init(w)), None, length=steps))(START)
    return np.concatenate([np.asarray(START)[None], np.asarray(ws)])


def steps_to(path: np.ndarray, tol: float = 1e-4) -> int:
    """The first step at which ``f(w) <= tol * f(w_0)`` (``len(path)`` if never)."""
    f = 0.5 * np.sum(np.asarray(CURVATURE) * path * path, axis=1)
    hit = np.flatnonzero(f <= tol * f[0])
    return int(hit[0]) if hit.size else len(path)


def digits_optimizers(epochs: int) -> dict:
    """The optimizers compared on the digits, by label; ``Adam -> SGD`` switches half-way (epochs at batch 32)."""
    half = epochs * 33 // 2
    return {
        "SGD": optimizer("sgd", learning_rate=0.1),
        "momentum": optimizer("sgd", learning_rate=0.02, momentum=0.9),
        "Nesterov": optimizer("sgd", learning_rate=0.02, momentum=0.9, nesterov=True),
        "Adagrad": optimizer("adagrad", learning_rate=0.05),
        "RMSprop": optimizer("rmsprop", learning_rate=1e-3),
        "Adam": optimizer("adam", learning_rate=1e-3),
        "Adam -> SGD": O.switch(O.adam(1e-3), O.sgd(0.05), at=half),
    }


def run(quick: bool = True, out: str | None = None) -> dict:
    """Trajectories on the quadratic, steps to converge, and the digits' validation curves."""
    res = new_result("optimizers", "4.3.5", "Optimizers")
    paths = {k: trajectory(o, 300 if quick else 1000) for k, o in quadratic_optimizers().items()}
    steps = {k: steps_to(p) for k, p in paths.items()}
    res["numbers"]["steps to f <= 1e-4 f(w0) on the quadratic"] = steps
    res["claims"].append(
        claim(
            "momentum and Nesterov need fewer steps than gradient descent on an ill-conditioned quadratic",
            steps["momentum 0.9"] < steps["GD"] and steps["Nesterov 0.9"] < steps["GD"],
            f"same rate {GD_RATE}: GD {steps['GD']}, momentum {steps['momentum 0.9']}, "
            f"Nesterov {steps['Nesterov 0.9']} steps",
        )
    )
    epochs = 10 if quick else 40
    model = mlp((32, 10), "tanh")
    curves = {k: fit_digits(model, o, epochs=epochs).history for k, o in digits_optimizers(epochs).items()}
    res["numbers"]["digits: final validation accuracy"] = {k: h["val_accuracy"][-1] for k, h in curves.items()}
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    g1, g2 = np.meshgrid(np.linspace(-1.1, 1.1, 200), np.linspace(-0.7, 0.7, 200))
    axes[0].contour(
        g1, g2, 0.5 * (g1**2 + 50 * g2**2), levels=np.geomspace(1e-3, 10, 12), colors="gray", linewidths=0.5
    )
    for k, p in paths.items():
        axes[0].plot(p[:80, 0], p[:80, 1], ".-", ms=3, lw=1, label=f"{k} ({steps[k]} steps)")
    axes[0].set_title("first 80 steps on (w1^2 + 50 w2^2) / 2")
    axes[0].legend(fontsize=7)
    for k, h in curves.items():
        axes[1].plot(range(1, epochs + 1), h["val_loss"], "o-", ms=3, label=k)
    axes[1].set_yscale("log")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("validation loss")
    axes[1].set_title("digits, MLP 32 tanh")
    axes[1].legend(fontsize=7)
    axes[1].grid(alpha=0.3)
    save(res, fig, out, "optimizers.png", "Optimizers on an ill-conditioned quadratic and on the digits.")
    return res
