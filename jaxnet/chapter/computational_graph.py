"""Computational graphs (section 4.2, figure 4.9): the worked example and a small MLP's loss, drawn.

The chapter's example ``y = ln(x1) + x1 x2 - sin(x2)`` is built node by node (v0 .. v6) with
its forward values and adjoints; its gradients are checked against ``jax.grad``. The graph JAX
traces for a small MLP's loss is drawn too, and the handwritten layer-by-layer backprop is
checked against ``jax.grad``. Pictures are drawn with matplotlib (no Graphviz); the DOT text
is written beside them for Graphviz users.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp

from jaxnet import nn
from jaxnet.autodiff import check_grads, draw, example
from jaxnet.autodiff.plot import plot_dot
from jaxnet.chapter._common import claim, new_result, save

LOSS = "softmax_cross_entropy_with_integer_labels"


def worked_example_numbers(x1: float = 2.0, x2: float = 5.0) -> dict:
    """The example's value, its adjoints dy/dx1, dy/dx2, the closed forms and ``jax.grad``."""
    ex = example.worked_example(x1, x2)
    g1, g2 = example.true_gradients(x1, x2)
    auto = jax.grad(lambda a, b: jnp.log(a) + a * b - jnp.sin(b), (0, 1))(x1, x2)
    return {
        "y": float(ex.y.value),
        "graph dy/dx1, dy/dx2": [float(ex.nodes["v0"].grad), float(ex.nodes["v1"].grad)],
        "1/x1 + x2, x1 - cos(x2)": [g1, g2],
        "jax.grad": [float(auto[0]), float(auto[1])],
    }


def mlp_loss_graph():
    """``(model, params, state, x, y)`` of the small MLP whose loss graph is drawn."""
    model = nn.MLP([4, 3], activation="tanh")
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 2))
    x = jax.random.normal(jax.random.PRNGKey(1), (8, 2))
    return model, params, state, x, jnp.arange(8) % 3


def backprop_error() -> float:
    """Largest relative difference between the handwritten backprop and ``jax.grad`` for a small MLP (float32)."""
    model, params, state, x, y = mlp_loss_graph()
    report = check_grads(model, params, state, x, y, LOSS)
    return max(float(e.handwritten) for e in report.values())


def run(quick: bool = True, out: str | None = None) -> dict:
    """The worked example's table and picture, the MLP loss graph, and the backprop check."""
    res = new_result("computational_graph", "4.2", "Computational graphs")
    nums = worked_example_numbers()
    res["numbers"].update(nums)
    res["numbers"]["table"] = "\n" + example.worked_example_table(2.0, 5.0)
    ok = all(abs(a - b) < 1e-5 for a, b in zip(nums["graph dy/dx1, dy/dx2"], nums["jax.grad"], strict=True))
    res["claims"].append(
        claim(
            "the graph's backward pass gives dy/dx1 = 1/x1 + x2 and dy/dx2 = x1 - cos(x2) (the chapter's table slips)",
            ok,
            f"at (2, 5): graph {nums['graph dy/dx1, dy/dx2'][0]:.6f}, {nums['graph dy/dx1, dy/dx2'][1]:.6f}; "
            f"jax.grad {nums['jax.grad'][0]:.6f}, {nums['jax.grad'][1]:.6f}",
        )
    )
    err = backprop_error()
    res["numbers"]["handwritten backprop vs jax.grad (max relative error)"] = err
    res["claims"].append(
        claim("the handwritten layer-by-layer backprop equals jax.grad", err < 1e-4, f"max relative error {err:.1e}")
    )
    ex = example.worked_example(2.0, 5.0)
    model, params, state, x, y = mlp_loss_graph()
    _graph_args = (model, params, state, x, y)
    dots = {
        "worked_example": draw.to_dot(ex.y, title="y = ln(x1) + x1 x2 - sin(x2) at x1=2, x2=5", rankdir="LR"),
        "mlp_loss": draw.loss_graph_dot(*_graph_args, LOSS, expand_calls=False),
    }
    captions = {
        "worked_example": "The worked example node by node: operation, forward value and adjoint dy/dv.",
        "mlp_loss": "The graph JAX traces for the loss of MLP([4, 3], tanh): parameters in blue, the loss in red.",
    }
    for name, dot in dots.items():
        if out is not None:
            os.makedirs(out, exist_ok=True)
            with open(os.path.join(out, f"{name}.dot"), "w") as f:
                f.write(dot)
        save(res, plot_dot(dot), out, f"{name}.png", captions[name])
    return res
