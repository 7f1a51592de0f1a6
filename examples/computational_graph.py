"""Computational graphs and handwritten backprop (§4.2), end to end.

1. The chapter's worked example ``y = ln(x1) + x1 x2 - sin(x2)`` built node by node (v0..v6):
   its table of values and adjoints, and its picture.
2. The graph JAX traces for a small MLP's loss (its jaxpr), as a picture.
3. The chapter's layer-by-layer backprop checked against ``jax.grad`` and finite differences.

Writes ``worked_example.dot``/``.png``/``.svg``, ``mlp_loss.dot``/``.png``/``.svg`` and
``worked_example.md`` under ``--out`` (default ``out/computational_graph``). The pictures are
drawn by Graphviz's ``dot`` when it is installed, else by matplotlib (no system program needed).
The same figures, with their claims, are :mod:`jaxnet.chapter.computational_graph` in ``jaxnet tour``.

Usage::

    python examples/computational_graph.py [--out DIR] [--x1 2 --x2 5] [--full]
"""

from __future__ import annotations

import argparse
import os

import jax
import jax.numpy as jnp

from jaxnet import nn
from jaxnet.autodiff import check_grads, draw, example


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join("out", "computational_graph"))
    p.add_argument("--x1", type=float, default=2.0)
    p.add_argument("--x2", type=float, default=5.0)
    p.add_argument("--full", action="store_true", help="accepted for symmetry with the other examples (no effect)")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    # 1. the worked example
    print(f"y = ln(x1) + x1*x2 - sin(x2) at x1={args.x1:g}, x2={args.x2:g}\n")
    print(example.worked_example_table(args.x1, args.x2))
    g1, g2 = example.true_gradients(args.x1, args.x2)
    print(f"\ndy/dx1 = 1/x1 + x2 = {g1:.6f}, dy/dx2 = x1 - cos(x2) = {g2:.6f}")
    with open(os.path.join(args.out, "worked_example.md"), "w") as f:
        f.write(example.worked_example_table(args.x1, args.x2, markdown=True) + "\n")
    ex = example.worked_example(args.x1, args.x2)
    dot = draw.to_dot(ex.y, title=f"y = ln(x1) + x1 x2 - sin(x2) at x1={args.x1:g}, x2={args.x2:g}")
    _save(dot, os.path.join(args.out, "worked_example"))

    # 2. the graph of a model's loss, as JAX traces it
    model = nn.MLP([4, 3], activation="tanh")
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 2))
    x = jax.random.normal(jax.random.PRNGKey(1), (8, 2))
    y = jnp.arange(8) % 3
    loss = "softmax_cross_entropy_with_integer_labels"
    _save(draw.loss_graph_dot(model, params, state, x, y, loss), os.path.join(args.out, "mlp_loss"))

    # 3. handwritten backprop vs jax.grad vs finite differences, in float64
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        deep = nn.MLP([16, 16, 3], activation="elu", batchnorm=True, dropout=0.2)
        _, params, state = deep.init(jax.random.PRNGKey(2), (-1, 5))
        params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
        x = jax.random.normal(jax.random.PRNGKey(3), (32, 5), jnp.float64)
        y = jnp.arange(32) % 3
        report = check_grads(deep, params, state, x, y, loss, penalties=[("l2", 1e-3)], key=jax.random.PRNGKey(4))
    finally:
        jax.config.update("jax_enable_x64", previous)
    print(f"\ncheck_grads on {deep.name}:")
    print(f"{'parameter':<26} {'handwritten vs jax.grad':>24} {'finite diff. vs jax.grad':>25}")
    for path, err in report.items():
        print(f"{path:<26} {err.handwritten:>24.1e} {err.finite_differences:>25.1e}")


def _save(dot: str, stem: str) -> None:
    with open(stem + ".dot", "w") as f:
        f.write(dot)
    for ext in ("png", "svg"):
        draw.render(dot, f"{stem}.{ext}")  # Graphviz when installed, else matplotlib
    engine = "Graphviz" if draw.has_dot() else "matplotlib"
    print(f"wrote {stem}.dot, {stem}.png and {stem}.svg (drawn by {engine})")


if __name__ == "__main__":
    main()
