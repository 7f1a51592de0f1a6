"""Learning-rate schedules (section 4.3.5): step, exponential, 1/t, warm-up, and cutting on a plateau.

The four schedules of the chapter are drawn as functions of the step. Then a run on the digits
uses ``fit(reduce_on_plateau=ReduceOnPlateau(...))``: the learning rate is cut whenever the
validation loss stops improving, by editing the optimizer state between epochs (no recompiling).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxnet import optim as O
from jaxnet import train as T
from jaxnet.chapter._common import claim, fit_digits, mlp, new_result, optimizer, pyplot, save

STEPS = 1000


def schedules(lr: float = 0.1) -> dict:
    """The chapter's schedules over ``STEPS`` steps, by label."""
    return {
        "step (halve every 200)": O.step_decay(lr, 0.5, every=200),
        "exponential (k = 0.003)": O.exponential_decay(lr, 3e-3),
        "1/t (k = 0.01)": O.inverse_time_decay(lr, 1e-2),
        "warm-up 100, then cosine": O.warmup_cosine_decay(lr, 100, STEPS),
    }


def plateau_run(epochs: int = 40) -> list[dict]:
    """Digits with SGD at a high rate and ReduceOnPlateau(patience=3, factor=0.3): the per-epoch history."""
    rule = T.ReduceOnPlateau(patience=3, factor=0.3)
    fr = fit_digits(
        mlp((32, 10), "tanh"), optimizer("sgd", learning_rate=0.1), epochs=epochs, lr=0.5, reduce_on_plateau=rule
    )
    return [dict(r) for r in fr.history.records]


def run(quick: bool = True, out: str | None = None) -> dict:
    """Schedule curves and a reduce-on-plateau run."""
    res = new_result("schedules", "4.3.5", "Learning-rate schedules")
    t = jnp.arange(STEPS)
    curves = {k: np.asarray(s(t)) for k, s in schedules().items()}
    res["numbers"]["learning rate at steps 0, 100, 500, 999"] = {
        k: [float(c[i]) for i in (0, 100, 500, 999)] for k, c in curves.items()
    }
    records = plateau_run(40 if quick else 100)
    lrs = [r["learning_rate"] for r in records]
    cuts = int(np.sum(np.diff(lrs) < 0))
    res["numbers"]["reduce on plateau: learning rate per epoch"] = lrs
    res["numbers"]["reduce on plateau: final validation accuracy"] = records[-1]["val_accuracy"]
    res["claims"].append(
        claim(
            "reduce-on-plateau cuts the learning rate when the validation loss stalls, inside fit",
            cuts >= 1 and abs(lrs[-1] - 0.5 * 0.3**cuts) < 1e-6,
            f"{cuts} cut(s) in {len(lrs)} epochs: 0.5 -> {lrs[-1]:.3g}",
        )
    )
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for k, c in curves.items():
        axes[0].plot(np.asarray(t), c, label=k)
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("learning rate")
    axes[0].legend(fontsize=8)
    ep = [r["epoch"] for r in records]
    axes[1].plot(ep, [r["val_loss"] for r in records], "o-", ms=3, label="validation loss")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("epoch")
    ax2 = axes[1].twinx()
    ax2.step(ep, lrs, "C3", where="post", label="learning rate")
    ax2.set_yscale("log")
    ax2.set_ylabel("learning rate", color="C3")
    axes[1].set_title("reduce on plateau (patience 3, factor 0.3)")
    axes[1].legend(loc="upper right", fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    save(res, fig, out, "schedules.png", "The chapter's learning-rate schedules, and a rate cut on each plateau.")
    return res
