"""Data augmentation (section 4.4.4): what random rotations, shears and stretches buy on few digits.

An MLP is trained on 300 digits with and without augmentation (each batch randomly rotated by
up to 0.2 rad, sheared by up to 0.2 and stretched by up to 1.15, inside the compiled step),
and on the validation digits. ``examples/augmentation_gallery.py`` shows the warped images.
"""

from __future__ import annotations

from jaxnet import data as D
from jaxnet.chapter._common import claim, gap, mlp, new_result, optimizer, pyplot, save, small_digits, train

_WARP = D.make_augment(rotation=0.2, shear=0.2, stretch=1.15)


def augment(key, x):
    """Warp flat 8x8 digits ``x`` [N, 64] with random rotation, shear and stretch."""
    return _WARP(key, x.reshape(-1, 8, 8)).reshape(x.shape)


def with_and_without(epochs: int = 60) -> dict:
    """``{label: (train accuracy, validation accuracy)}`` with and without augmentation."""
    data, val = small_digits()
    model, opt = mlp((256, 10), "relu"), optimizer("adam", learning_rate=1e-3)
    out = {}
    for label, aug in (("plain", None), ("augmented", augment)):
        out[label] = gap(train(model, opt, data, epochs=epochs, batch_size=32, val=val, augment=aug), model, data, val)[
            :2
        ]
    return out


def run(quick: bool = True, out: str | None = None) -> dict:
    """Validation accuracy with and without augmentation on 300 training digits."""
    res = new_result("augmentation", "4.4.4", "Data augmentation")
    r = with_and_without(60 if quick else 200)
    for k, (a, b) in r.items():
        res["numbers"][f"{k}: accuracy train, validation"] = [a, b]
    res["claims"].append(
        claim(
            "augmentation improves validation accuracy when training data are few",
            r["augmented"][1] > r["plain"][1],
            f"300 training digits: validation {r['plain'][1]:.3f} -> {r['augmented'][1]:.3f} with augmentation",
        )
    )
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    labels = list(r)
    ax.bar([i - 0.2 for i in range(2)], [r[k][0] for k in labels], 0.4, label="train")
    ax.bar([i + 0.2 for i in range(2)], [r[k][1] for k in labels], 0.4, label="validation")
    ax.set_xticks([0, 1], labels)
    ax.set_ylim(0.8, 1.0)
    ax.set_ylabel("accuracy")
    ax.legend()
    save(res, fig, out, "augmentation.png", "Accuracy on 300 training digits with and without augmentation.")
    return res
