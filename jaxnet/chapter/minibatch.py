"""Mini-batches against the full batch (section 4.3.4).

The same MLP is trained on the digits with SGD for the same number of epochs with batches of
8, 32, 128 samples and the whole training set. Per epoch a batch of size S makes N/S updates,
so small batches get much further per epoch; per update the full batch is the best estimate of
the gradient, but each of its updates costs N samples.
"""

from __future__ import annotations

from jaxnet.chapter._common import claim, digits, fit_digits, mlp, new_result, optimizer, pyplot, save

SIZES = (8, 32, 128)


def curves(sizes=SIZES, *, epochs: int = 10, lr: float = 0.1) -> dict:
    """Training loss per epoch for each batch size and the full batch: ``{size: [loss per epoch]}``."""
    n = digits()[0][0].shape[0]
    model, opt = mlp((32, 10), "tanh"), optimizer("sgd", learning_rate=0.1)
    return {s: fit_digits(model, opt, epochs=epochs, batch_size=s, lr=lr).history["loss"] for s in (*sizes, n)}


def run(quick: bool = True, out: str | None = None) -> dict:
    """Loss curves per batch size, against epochs and against updates."""
    res = new_result("minibatch", "4.3.4", "Mini-batches against the full batch")
    epochs = 10 if quick else 50
    c = curves(epochs=epochs)
    n = max(c)
    for s, h in c.items():
        res["numbers"][f"batch {s}: final training loss"] = h[-1]
    res["claims"].append(
        claim(
            "for the same number of epochs, mini-batches reach a lower training loss than the full batch",
            all(c[s][-1] < c[n][-1] for s in SIZES),
            f"after {epochs} epochs: " + ", ".join(f"batch {s} {c[s][-1]:.3f}" for s in c),
        )
    )
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for s, h in c.items():
        label = f"batch {s}" if s != n else f"full batch ({n})"
        axes[0].plot(range(1, len(h) + 1), h, "o-", ms=3, label=label)
        axes[1].loglog([(e + 1) * (n // s) for e in range(len(h))], h, "o-", ms=3, label=label)
    axes[0].set_xlabel("epoch")
    axes[1].set_xlabel("updates")
    for ax in axes:
        ax.set_ylabel("training loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save(res, fig, out, "minibatch.png", "Training loss per epoch and per update, for several batch sizes.")
    return res
