"""``make demo``: the XOR network by hand and by learning, then the circle data of figure 4.3."""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp

import jaxnet as jn
from jaxnet.nn import losses


def _train(model, x, y, *, steps, lr, key, log_every):
    _, params, state = model.init(key, (-1, x.shape[1]))
    opt = jn.optim.sgd(lr)
    opt_state = opt.init(params)
    step = jn.make_train_step(
        model, losses.softmax_cross_entropy_with_integer_labels, opt, metrics={"accuracy": losses.accuracy}
    )
    for i in range(1, steps + 1):
        params, state, opt_state, m = step(params, state, opt_state, (x, y), jax.random.fold_in(key, i))
        if i % log_every == 0 or i == steps:
            print(f"  step {i:5d}  loss {float(m['loss']):.4f}  accuracy {float(m['accuracy']):.3f}")
    return params, state


def main() -> None:
    print(f"jaxnet {jn.__version__} on {jax.default_backend()}")
    print("\nXOR by hand (§4.1.3): h1 = step(x1+x2-0.5), h2 = step(x1+x2-1.5), y = step(h1-h2-0.5)")
    table = jn.nn.xor_table()
    print("  x1  x2  h1  h2  h1-h2-0.5   y")
    for row in zip(*(table[c] for c in ("x1", "x2", "h1", "h2", "z", "y"))):
        print("  {:2.0f}  {:2.0f}  {:2.0f}  {:2.0f}  {:9.1f}  {:2.0f}".format(*map(float, row)))

    print("\nXOR learned by an MLP 2-8-2 (tanh, SGD):")
    x, y = jn.data.xor()
    params, state = _train(jn.MLP([8, 2], "tanh"), x, y, steps=500, lr=0.5, key=jax.random.PRNGKey(1), log_every=100)

    print("\nCircle data (label 1 iff 3 <= x^2+y^2 <= 8), MLP 2-32-32-2 (relu, SGD, full batch):")
    x, y = jn.data.circle(jax.random.PRNGKey(2), 2000)
    xt, yt = jn.data.circle(jax.random.PRNGKey(3), 1000)
    model = jn.MLP([32, 32, 2], "relu")
    t0 = time.perf_counter()
    params, state = _train(model, x, y, steps=3000, lr=0.1, key=jax.random.PRNGKey(4), log_every=500)
    out, _ = model.apply(params, state, xt, train=False)
    print(f"  held-out accuracy {float(losses.accuracy(out, yt)):.3f}  ({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
