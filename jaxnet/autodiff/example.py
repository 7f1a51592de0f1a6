"""The chapter's worked example, ``y = ln(x1) + x1 x2 - sin(x2)``, node by node.

The graph has seven nodes::

    v0 = x1            v1 = x2
    v2 = ln(v0)        v3 = v0 * v1        v4 = sin(v1)
    v5 = v2 + v3       v6 = v5 - v4 = y

The backward pass starts from ``v6_bar = 1`` and applies one local derivative per edge:
``v5_bar = 1``, ``v4_bar = -1``, ``v2_bar = v3_bar = 1``,
``v1_bar = v3_bar * v0 + v4_bar * cos(v1) = x1 - cos(x2)``,
``v0_bar = v2_bar / v0 + v3_bar * v1 = 1/x1 + x2``.

The chapter's own arithmetic slips in a few places (it gives both inputs of ``v6`` the
adjoint ``-1``, writes ``1/ln`` for the derivative of ``ln`` and loses a sign on the
``cos`` term); the engine computes the true gradients above, which ``jax.grad`` confirms.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from jaxnet.autodiff import graph as G

DEFINITIONS = {
    "v0": "x1",
    "v1": "x2",
    "v2": "ln(v0)",
    "v3": "v0 * v1",
    "v4": "sin(v1)",
    "v5": "v2 + v3",
    "v6": "v5 - v4",
}
"""Each node's definition, as printed in the table."""


class WorkedExample(NamedTuple):
    """The example's nodes ``v0..v6`` (after ``backward``) and its output ``y = v6``."""

    nodes: dict
    y: G.Node


def worked_example(x1: float = 2.0, x2: float = 5.0) -> WorkedExample:
    """Build ``y = ln(x1) + x1 x2 - sin(x2)`` as nodes ``v0..v6`` and run the backward pass.

    Args:
      x1: first input; must be positive (``ln``).
      x2: second input.

    Returns:
      A :class:`WorkedExample`; ``nodes["v0"].grad`` is ``dy/dx1`` and ``nodes["v1"].grad`` is ``dy/dx2``.

    Raises:
      ValueError: if ``x1 <= 0``.
    """
    if not float(x1) > 0:
        raise ValueError(f"worked_example: x1 must be positive (it goes through ln), got {x1!r}")
    v0 = G.Node(float(x1), name="v0")
    v1 = G.Node(float(x2), name="v1")
    v2 = G.log(v0).named("v2")
    v3 = G.mul(v0, v1).named("v3")
    v4 = G.sin(v1).named("v4")
    v5 = G.add(v2, v3).named("v5")
    v6 = G.sub(v5, v4).named("v6")
    v6.backward()
    nodes = {n.name: n for n in (v0, v1, v2, v3, v4, v5, v6)}
    return WorkedExample(nodes, v6)


def true_gradients(x1: float, x2: float) -> tuple[float, float]:
    """The closed-form gradient ``(1/x1 + x2, x1 - cos x2)``."""
    return 1.0 / x1 + x2, x1 - float(np.cos(x2))


def worked_example_table(x1: float = 2.0, x2: float = 5.0, *, markdown: bool = False) -> str:
    """A table of every node's definition, forward value and adjoint ``dy/dv_i``.

    Args:
      x1, x2: the inputs.
      markdown: a Markdown table instead of aligned plain text.

    Returns:
      The table as a string.
    """
    ex = worked_example(x1, x2)
    rows = [(k, DEFINITIONS[k], f"{float(n.value):.6f}", f"{float(n.grad):.6f}") for k, n in ex.nodes.items()]
    header = ("node", "definition", "value", "adjoint dy/dv")
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|---|---|---:|---:|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [*rows, header]) for i in range(4)]

    def fmt(r):
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))

    return "\n".join([fmt(header), fmt(tuple("-" * w for w in widths))] + [fmt(r) for r in rows])


def main() -> None:  # pragma: no cover - a demo
    x1, x2 = 2.0, 5.0
    print(f"y = ln(x1) + x1*x2 - sin(x2) at x1={x1}, x2={x2}\n")
    print(worked_example_table(x1, x2))
    g1, g2 = true_gradients(x1, x2)
    print(f"\ndy/dx1 = 1/x1 + x2 = {g1:.6f}    dy/dx2 = x1 - cos(x2) = {g2:.6f}")


if __name__ == "__main__":  # pragma: no cover
    main()
