"""Dropout (section 4.4.3): a narrower gap between training and validation accuracy.

A wide MLP is trained on 300 digits (Adam, 60 epochs) with and without dropout (p = 0.5 after every hidden
layer) and with the chapter's form of dropout (scale by the keep probability at test time).
"""

from __future__ import annotations

from jaxnet.chapter._common import claim, gap, mlp, new_result, optimizer, pyplot, save, small_digits, train


def gaps(epochs: int = 60) -> dict:
    """``{label: (train accuracy, val accuracy)}`` for no dropout, inverted dropout 0.5 and the chapter's form."""
    data, val = small_digits()
    opt = optimizer("adam", learning_rate=1e-3)
    out = {}
    for label, kw in (
        ("no dropout", {}),
        ("dropout 0.5", {"dropout": 0.5}),
        ("dropout 0.5, chapter's form", {"dropout": 0.5, "dropout_mode": "chapter"}),
    ):
        model = mlp((512, 512, 10), "relu", **kw)
        out[label] = gap(train(model, opt, data, epochs=epochs, batch_size=32, val=val), model, data, val)
    return out


def run(quick: bool = True, out: str | None = None) -> dict:
    """Train and validation accuracy with and without dropout."""
    res = new_result("dropout", "4.4.3", "Dropout")
    g = gaps(60 if quick else 200)
    for k, (a, b, la, lb) in g.items():
        res["numbers"][f"{k}: accuracy train, validation"] = [a, b]
        res["numbers"][f"{k}: loss train, validation"] = [la, lb]
    plain, drop = g["no dropout"], g["dropout 0.5"]
    # Both nets reach 100 % training accuracy, so the accuracy gap is mostly the validation accuracy;
    # the cross-entropy gap still shows how far each has overfitted.
    res["claims"].append(
        claim(
            "dropout narrows the train/validation gap (in cross-entropy)",
            drop[3] - drop[2] < plain[3] - plain[2],
            f"val - train loss: without dropout {plain[3] - plain[2]:.3f}, with dropout 0.5 {drop[3] - drop[2]:.3f}; "
            f"accuracy gap {plain[0] - plain[1]:.3f} -> {drop[0] - drop[1]:.3f}",
        )
    )
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    labels = list(g)
    x = range(len(labels))
    ax.bar([i - 0.2 for i in x], [g[k][0] for k in labels], 0.4, label="train")
    ax.bar([i + 0.2 for i in x], [g[k][1] for k in labels], 0.4, label="validation")
    ax.set_xticks(list(x), labels, fontsize=8)
    ax.set_ylim(0.8, 1.0)
    ax.set_ylabel("accuracy")
    ax.legend()
    save(res, fig, out, "dropout.png", "Train and validation accuracy on 300 digits with and without dropout.")
    return res
