"""Computational graphs, handwritten backprop and gradient checks (§4.2).

* :mod:`jaxnet.autodiff.graph`: a small reverse-mode engine over arrays (nodes with values and adjoints).
* :mod:`jaxnet.autodiff.example`: the chapter's worked example ``y = ln(x1) + x1 x2 - sin(x2)``.
* :mod:`jaxnet.autodiff.draw`: Graphviz pictures of engine graphs and of any JAX function's jaxpr.
* :mod:`jaxnet.autodiff.backprop`: the chapter's layer-by-layer backprop, written by hand.
* :mod:`jaxnet.autodiff.layer_rules`: its rules for the norms, Embedding, Reshape and the branching combinators.
* :mod:`jaxnet.autodiff.seq_rules`: its rules for attention, positions, RNNs through time and transformers.
* :mod:`jaxnet.autodiff.check`: :func:`check_grads`, handwritten vs ``jax.grad`` vs finite differences.
"""

from jaxnet.autodiff import draw, example, graph, seq_rules
from jaxnet.autodiff.backprop import RULES, backprop, backprop_grad, check_supported, loss_gradient
from jaxnet.autodiff.check import GradError, GradientMismatchError, check_grads, relative_error
from jaxnet.autodiff.draw import has_dot, jaxpr_to_dot, loss_graph_dot, render, to_dot
from jaxnet.autodiff.example import worked_example, worked_example_table
from jaxnet.autodiff.graph import Node
from jaxnet.autodiff.seq_rules import dot_product_attention_backward, dot_product_attention_forward

__all__ = [
    "RULES",
    "GradError",
    "GradientMismatchError",
    "Node",
    "backprop",
    "backprop_grad",
    "check_grads",
    "check_supported",
    "dot_product_attention_backward",
    "dot_product_attention_forward",
    "draw",
    "example",
    "graph",
    "has_dot",
    "jaxpr_to_dot",
    "loss_gradient",
    "loss_graph_dot",
    "relative_error",
    "render",
    "seq_rules",
    "to_dot",
    "worked_example",
    "worked_example_table",
]
