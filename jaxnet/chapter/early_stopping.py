"""Early stopping (section 4.4.1): stop when the validation loss stops improving, keep the best epoch.

A wide MLP overfits 300 digits; ``fit`` with ``EarlyStopping(patience=10)`` stops some epochs
after the validation loss bottoms out and returns the parameters of its best epoch.
"""

from __future__ import annotations

import numpy as np

from jaxnet import train as T
from jaxnet.chapter._common import accuracy, claim, mlp, new_result, optimizer, pyplot, save, small_digits, train


def compare(epochs: int = 150, patience: int = 10) -> dict:
    """A full run and an early-stopped run of the same model: their histories, stop epochs and validation accuracy."""
    data, val = small_digits()
    model, opt = mlp((512, 10), "relu"), optimizer("adam", learning_rate=3e-3)
    full = train(model, opt, data, epochs=epochs, batch_size=32, val=val)
    stop = train(
        model, opt, data, epochs=epochs, batch_size=32, val=val, early_stopping=T.EarlyStopping(patience=patience)
    )
    return {
        "full": full.history,
        "stopped_at": stop.epoch,
        "best_epoch": stop.history.best_epoch,
        "val_loss_full": full.history["val_loss"][-1],
        "val_loss_best": min(stop.history["val_loss"]),
        "val_accuracy_full": accuracy(model, full.params, full.state, val),
        "val_accuracy_stopped": accuracy(model, stop.params, stop.state, val),
    }


def run(quick: bool = True, out: str | None = None) -> dict:
    """The validation curve of a long run, where early stopping stopped, and what it kept."""
    res = new_result("early_stopping", "4.4.1", "Early stopping")
    r = compare(epochs=100 if quick else 300)
    for k in (
        "stopped_at",
        "best_epoch",
        "val_loss_full",
        "val_loss_best",
        "val_accuracy_full",
        "val_accuracy_stopped",
    ):
        res["numbers"][k] = r[k]
    res["claims"].append(
        claim(
            "early stopping keeps a lower validation loss than training to the end, in fewer epochs",
            r["val_loss_best"] < r["val_loss_full"] and r["stopped_at"] < len(r["full"]["val_loss"]),
            f"stopped at epoch {r['stopped_at']} (best {r['best_epoch']}): val loss {r['val_loss_best']:.3f} "
            f"against {r['val_loss_full']:.3f} after {len(r['full']['val_loss'])} epochs",
        )
    )
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    h = r["full"]
    ax.plot(np.arange(1, len(h["loss"]) + 1), h["loss"], label="train loss")
    ax.plot(np.arange(1, len(h["val_loss"]) + 1), h["val_loss"], label="validation loss")
    ax.axvline(r["best_epoch"], color="C2", ls="--", label=f"best epoch ({r['best_epoch']}), kept")
    ax.axvline(r["stopped_at"], color="C3", ls=":", label=f"stopped ({r['stopped_at']})")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save(
        res,
        fig,
        out,
        "early_stopping.png",
        "Training and validation loss of a long run, and where early stopping acts.",
    )
    return res
