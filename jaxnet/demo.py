"""``make demo``, part one: the XOR network by hand and by learning, then the circle data of figure 4.3.

Part two is the command line: ``jaxnet train`` on the digits (see the Makefile's ``DEMO_ARGS``).
"""

from __future__ import annotations

import time

import jax

import jaxnet as jn
from jaxnet.nn import losses
from jaxnet.train import evaluate, fit

LOSS = "softmax_cross_entropy_with_integer_labels"
ACC = {"accuracy": losses.accuracy}


def main() -> None:
    print(f"jaxnet {jn.__version__} on {jax.default_backend()}")
    print("\nXOR by hand (§4.1.3): h1 = step(x1+x2-0.5), h2 = step(x1+x2-1.5), y = step(h1-h2-0.5)")
    table = jn.nn.xor_table()
    print("  x1  x2  h1  h2  h1-h2-0.5   y")
    for row in zip(*(table[c] for c in ("x1", "x2", "h1", "h2", "z", "y")), strict=True):
        print("  {:2.0f}  {:2.0f}  {:2.0f}  {:2.0f}  {:9.1f}  {:2.0f}".format(*map(float, row)))

    print("\nXOR learned by an MLP 2-8-2 (tanh, SGD, 4 points per step, 500 epochs in one compiled program):")
    x, y = jn.data.xor()
    model = jn.MLP([8, 2], "tanh")
    r = fit(
        model,
        LOSS,
        jn.sgd(0.5),
        (x, y),
        epochs=500,
        batch_size=4,
        key=jax.random.PRNGKey(1),
        metrics=ACC,
        progress=False,
        epochs_per_call=500,
    )
    accuracy = evaluate(model, LOSS, r.params, r.state, (x, y), metrics=ACC)["accuracy"]
    print(f"  loss {r.history['loss'][-1]:.4f}  accuracy {accuracy:.3f}")

    print("\nCircle data (label 1 iff 3 <= x^2+y^2 <= 8), MLP 2-32-32-2 (relu, SGD with momentum, batches of 50):")
    x, y = jn.data.circle(jax.random.PRNGKey(2), 2000)
    xt, yt = jn.data.circle(jax.random.PRNGKey(3), 1000)
    model = jn.MLP([32, 32, 2], "relu")
    t0 = time.perf_counter()
    r = fit(
        model,
        LOSS,
        jn.sgd(0.05, momentum=0.9),
        (x, y),
        epochs=60,
        batch_size=50,
        key=jax.random.PRNGKey(4),
        validation=0.1,
        metrics=ACC,
        progress=False,
        epochs_per_call=20,
    )
    h = r.history
    for e in (0, 19, 39, 59):
        print(f"  epoch {h['epoch'][e]:3d}  loss {h['loss'][e]:.4f}  val_accuracy {h['val_accuracy'][e]:.3f}")
    acc = evaluate(model, LOSS, r.params, r.state, (xt, yt), metrics=ACC)["accuracy"]
    print(f"  held-out accuracy {acc:.3f}  ({time.perf_counter() - t0:.1f} s)")
    print("\nNext: `jaxnet train` on the 8x8 digits (part two of make demo).")


if __name__ == "__main__":
    main()
