"""Representation learning on the circle data (section 4.1.1, figure 4.3).

A linear classifier on the raw points ``(x, y)`` cannot tell the ring (label 1 iff
``3 <= x^2 + y^2 <= 8``) from the rest; the same classifier on the last hidden layer of a
trained MLP can: the hidden layers have learned a representation in which the classes are
linearly separable. The MLP's last hidden layer has two units, so that it can be drawn.
"""

from __future__ import annotations

import jax
import numpy as np

from jaxnet import data as D
from jaxnet import optim as O
from jaxnet.chapter._common import claim, linear_probe, new_result, pyplot, save, train
from jaxnet.nn import MLP, intermediates


def circle_representation(n: int = 2000, epochs: int = 150, seed: int = 0) -> dict:
    """Train ``MLP([32, 2, 2], tanh)`` on circle data; linear-probe accuracy on raw inputs and on its last hidden layer.

    Returns:
      ``{"raw": accuracy, "hidden": accuracy, "x", "y", "h"}`` with ``h`` the [n, 2] last hidden layer (test points).
    """
    x, y = D.circle(jax.random.PRNGKey(seed), n)
    (xtr, ytr), (xte, yte) = D.train_test_split(jax.random.PRNGKey(seed + 1), x, y, test=0.3)
    model = MLP([32, 2, 2], "tanh")
    fr = train(model, O.adam(0.01), (xtr, ytr), epochs=epochs, batch_size=32, seed=seed)
    hid = lambda a: intermediates(model, fr.params, fr.state, a, train=False)[-2]  # noqa: E731
    raw = linear_probe(xtr, ytr, xte, yte)
    hidden = linear_probe(hid(xtr), ytr, hid(xte), yte)
    return {"raw": raw, "hidden": hidden, "x": np.asarray(xte), "y": np.asarray(yte), "h": np.asarray(hid(xte))}


def run(quick: bool = True, out: str | None = None) -> dict:
    """The circle data against the learned representation, and a linear classifier on each."""
    res = new_result("representation", "4.1.1", "Representation learning on the circle data")
    r = circle_representation(n=2000 if quick else 6000, epochs=150 if quick else 300)
    res["numbers"]["linear classifier on raw (x, y)"] = r["raw"]
    res["numbers"]["linear classifier on the last hidden layer"] = r["hidden"]
    res["claims"].append(
        claim(
            "the learned representation makes the ring linearly separable (raw ~0.69, hidden ~0.98)",
            r["raw"] < 0.8 and r["hidden"] > 0.95,
            f"linear classifier: raw {r['raw']:.3f} -> last hidden layer {r['hidden']:.3f}",
        )
    )
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, pts, title in (
        (axes[0], r["x"], f"raw data: linear accuracy {r['raw']:.2f}"),
        (axes[1], r["h"], f"last hidden layer: linear accuracy {r['hidden']:.2f}"),
    ):
        ax.scatter(pts[:, 0], pts[:, 1], c=r["y"], cmap="coolwarm", s=6)
        ax.set_title(title)
    axes[1].set_xlabel("hidden unit 1")
    axes[1].set_ylabel("hidden unit 2")
    save(res, fig, out, "representation.png", "The circle data and the MLP's last hidden layer (test points).")
    return res
