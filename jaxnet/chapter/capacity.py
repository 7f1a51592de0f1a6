"""Under- and overfitting against model size (section 4.4.1, figure 4.13).

MLPs from 2 to 512 hidden units are trained for the same number of epochs on a small part of
the digits (300 samples). The narrowest cannot even fit the training set (underfitting); the
widest fit it perfectly while their validation loss turns upward (overfitting).
"""

from __future__ import annotations

import numpy as np

from jaxnet.chapter._common import claim, gap, mlp, new_result, optimizer, pyplot, save, small_digits, train

WIDTHS = (2, 8, 32, 512)


def by_width(widths=WIDTHS, *, epochs: int = 100) -> dict:
    """``{width: (train accuracy, val accuracy, history)}`` after ``epochs`` of Adam on 300 digits."""
    data, val = small_digits()
    out = {}
    for w in widths:
        model = mlp((w, 10), "relu")
        fr = train(model, optimizer("adam", learning_rate=3e-3), data, epochs=epochs, batch_size=32, val=val)
        out[w] = (*gap(fr, model, data, val)[:2], fr.history)
    return out


def run(quick: bool = True, out: str | None = None) -> dict:
    """Train/validation accuracy and validation-loss curves for four widths."""
    res = new_result("capacity", "4.4.1", "Under- and overfitting against model size")
    r = by_width(epochs=100 if quick else 300)
    res["numbers"]["hidden units"] = list(WIDTHS)
    res["numbers"]["train accuracy"] = [r[w][0] for w in WIDTHS]
    res["numbers"]["validation accuracy"] = [r[w][1] for w in WIDTHS]
    wide = r[WIDTHS[-1]][2]["val_loss"]
    best = int(np.argmin(wide))
    res["numbers"][f"{WIDTHS[-1]} units: best val loss (epoch), final val loss"] = [wide[best], best + 1, wide[-1]]
    res["claims"].append(
        claim(
            "a tiny model underfits (cannot fit the training set), a large one overfits (train >> validation)",
            r[2][0] < 0.8 and r[WIDTHS[-1]][0] == 1.0 and wide[-1] > wide[best],
            f"2 units: train {r[2][0]:.2f}; {WIDTHS[-1]} units: train {r[WIDTHS[-1]][0]:.2f}, "
            f"val loss {wide[best]:.3f} at epoch {best + 1} -> {wide[-1]:.3f}",
        )
    )
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].semilogx(WIDTHS, res["numbers"]["train accuracy"], "o-", label="train")
    axes[0].semilogx(WIDTHS, res["numbers"]["validation accuracy"], "o-", label="validation")
    axes[0].set_xlabel("hidden units")
    axes[0].set_ylabel("accuracy")
    axes[0].legend()
    for w in WIDTHS:
        h = r[w][2]
        (line,) = axes[1].plot(h["loss"], label=f"{w} train")
        axes[1].plot(h["val_loss"], "--", color=line.get_color(), label=f"{w} validation")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("loss")
    axes[1].legend(fontsize=7, ncol=2)
    for ax in axes:
        ax.grid(alpha=0.3)
    save(res, fig, out, "capacity.png", "Model size against train and validation accuracy; loss curves per width.")
    return res
