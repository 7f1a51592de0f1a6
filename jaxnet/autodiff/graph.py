"""A small reverse-mode autodiff engine over arrays: the computational graph of §4.2.

Every operation builds a :class:`Node` that keeps its forward value, its parents and a
local backward rule (the vector-Jacobian product of that one operation). Calling
``y.backward()`` seeds ``y``'s adjoint with 1 and visits the graph in reverse
topological order, each node handing ``adjoint * local derivative`` to its parents:
the chain rule, one edge at a time.

* Values are NumPy arrays (integers become float64); the engine runs eagerly and is
  meant to be read and inspected, not compiled. ``node.value`` is the forward value and
  ``node.grad`` the adjoint ``dy/dnode`` after the last ``backward``.
* Broadcasting follows NumPy; a gradient flowing into a broadcast input is summed back
  to that input's shape.
* The topological order is computed with an explicit stack, so a chain of 10,000 nodes
  does not touch Python's recursion limit.
* Every ``backward`` starts from zero adjoints, so calling it twice gives the same
  gradients (nothing accumulates across calls).
* At kinks: ``relu'(0) = 0`` (the indicator ``1{x > 0}``), as in :mod:`jaxnet.nn.activations`.

Example::

    x1, x2 = Node(2.0, name="x1"), Node(5.0, name="x2")
    y = log(x1) + x1 * x2 - sin(x2)
    y.backward()
    x1.grad, x2.grad          # 1/x1 + x2 = 5.5, x1 - cos(x2) = 1.7163...
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike

_ids = itertools.count()


def _as_array(value) -> np.ndarray:
    a = np.asarray(value)
    if not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
    return a


def unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``g`` over the axes that broadcasting added or stretched, giving an array of ``shape``."""
    g = np.asarray(g)
    extra = g.ndim - len(shape)
    if extra > 0:
        g = g.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    if stretched:
        g = g.sum(axis=stretched, keepdims=True)
    return g.reshape(shape)


class Node:
    """One vertex of the graph: a value, the parents it was computed from, and how to
    send an adjoint back to them.

    Attributes:
      value: the forward value (a NumPy array).
      grad: the adjoint ``d output / d value`` after :meth:`backward` (``None`` before).
      op: the operation's name (``"input"`` for leaves, ``"const"`` for constants).
      parents: the input nodes, in argument order.
      name: an optional label (``"v0"``, ``"x1"``), shown in tables and pictures.
    """

    __slots__ = ("_id", "_vjp", "grad", "name", "op", "parents", "value")
    __array_priority__ = 1000  # so that ndarray <op> Node dispatches to Node's reflected operators

    def __init__(
        self,
        value,
        *,
        name: str | None = None,
        op: str = "input",
        parents: Sequence[Node] = (),
        vjp: Callable | None = None,
    ):
        self.value = _as_array(value)
        self.grad: np.ndarray | None = None
        self.op = op
        self.parents = tuple(parents)
        self.name = name
        self._vjp = vjp
        self._id = next(_ids)

    @property
    def shape(self) -> tuple:
        return self.value.shape

    def named(self, name: str) -> Node:
        """Set the label and return the node, for building named graphs inline."""
        self.name = name
        return self

    def __repr__(self) -> str:
        label = f"{self.name}=" if self.name else ""
        return f"Node({label}{self.op}, value={self.value!r}, grad={self.grad!r})"

    def backward(self, seed: ArrayLike | None = None) -> None:
        """Fill in ``grad`` on every node this one depends on: ``grad = d self / d node``.

        Args:
          seed: the adjoint of ``self`` (default 1; needed when ``self`` is not a scalar).

        Raises:
          ValueError: for a non-scalar output without a seed, or a seed of the wrong shape.
        """
        if seed is None:
            if self.value.size != 1:
                raise ValueError(
                    f"backward: output {self.name or self.op} has shape {self.shape}; "
                    "pass seed= (an array of that shape) or reduce it with sum()/mean() first"
                )
            seed = np.ones_like(self.value)
        seed = _as_array(seed)
        if seed.shape != self.shape:
            raise ValueError(f"backward: seed must have the output's shape {self.shape}, got {seed.shape}")
        order = topological_order(self)
        for node in order:
            node.grad = np.zeros_like(node.value)
        self.grad = seed.astype(self.value.dtype)
        for node in reversed(order):
            if node._vjp is None:
                continue
            for parent, g in zip(node.parents, node._vjp(node.grad), strict=True):
                parent.grad = parent.grad + unbroadcast(g, parent.shape)

    # Python operators build graph nodes.
    def __add__(self, other):
        return add(self, other)

    def __radd__(self, other):
        return add(other, self)

    def __sub__(self, other):
        return sub(self, other)

    def __rsub__(self, other):
        return sub(other, self)

    def __mul__(self, other):
        return mul(self, other)

    def __rmul__(self, other):
        return mul(other, self)

    def __truediv__(self, other):
        return div(self, other)

    def __rtruediv__(self, other):
        return div(other, self)

    def __neg__(self):
        return neg(self)

    def __pow__(self, other):
        return pow(self, other)

    def __rpow__(self, other):
        return pow(other, self)

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)


def as_node(x: Node | ArrayLike) -> Node:
    """``x`` itself if it is a :class:`Node`, else a constant node holding ``x``."""
    return x if isinstance(x, Node) else Node(x, op="const")


def topological_order(output: Node) -> list[Node]:
    """Every node ``output`` depends on, parents before children, ``output`` last.

    Depth-first search with an explicit stack (no recursion), so arbitrarily deep graphs work.
    """
    order, seen = [], set()
    stack = [(output, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node._id in seen:
            continue
        seen.add(node._id)
        stack.append((node, True))
        for parent in reversed(node.parents):
            if parent._id not in seen:
                stack.append((parent, False))
    return order


def _make(op: str, value, parents, vjp) -> Node:
    return Node(value, op=op, parents=parents, vjp=vjp)


def _shapes_error(op, a, b, e):
    return ValueError(f"{op}: operands of shapes {a.shape} and {b.shape} do not broadcast ({e})")


def _binary(op: str, fn, a, b, vjp_fn) -> Node:
    a, b = as_node(a), as_node(b)
    try:
        value = fn(a.value, b.value)
    except ValueError as e:
        raise _shapes_error(op, a, b, e) from None
    return _make(op, value, (a, b), lambda g: vjp_fn(g, a.value, b.value, value))


def add(a: Node | ArrayLike, b: Node | ArrayLike) -> Node:
    """``a + b``; each input receives the adjoint (summed back over broadcast axes)."""
    return _binary("add", np.add, a, b, lambda g, x, y, out: (g, g))


def sub(a: Node | ArrayLike, b: Node | ArrayLike) -> Node:
    """``a - b``: adjoints ``g`` and ``-g``."""
    return _binary("sub", np.subtract, a, b, lambda g, x, y, out: (g, -g))


def mul(a: Node | ArrayLike, b: Node | ArrayLike) -> Node:
    """``a * b``: adjoints ``g b`` and ``g a``."""
    return _binary("mul", np.multiply, a, b, lambda g, x, y, out: (g * y, g * x))


def div(a: Node | ArrayLike, b: Node | ArrayLike) -> Node:
    """``a / b``: adjoints ``g / b`` and ``-g a / b^2``."""
    return _binary("div", np.divide, a, b, lambda g, x, y, out: (g / y, -g * x / (y * y)))


def pow(a: Node | ArrayLike, b: Node | ArrayLike) -> Node:
    """``a ** b``: adjoints ``g b a^(b-1)`` and ``g a^b ln a`` (the latter taken as 0 where ``a <= 0``)."""

    def vjp(g, x, y, out):
        safe_log = np.log(np.where(x > 0, x, 1.0))
        return g * y * np.power(x, y - 1), g * np.where(x > 0, out * safe_log, 0.0)

    return _binary("pow", np.power, a, b, vjp)


def _unary(op: str, fn, a, vjp_fn) -> Node:
    a = as_node(a)
    value = fn(a.value)
    return _make(op, value, (a,), lambda g: (vjp_fn(g, a.value, value),))


def neg(a: Node | ArrayLike) -> Node:
    """``-a``."""
    return _unary("neg", np.negative, a, lambda g, x, out: -g)


def exp(a: Node | ArrayLike) -> Node:
    """``e^a``: adjoint ``g e^a``."""
    return _unary("exp", np.exp, a, lambda g, x, out: g * out)


def log(a: Node | ArrayLike) -> Node:
    """Natural logarithm: adjoint ``g / a`` (the chapter's worked example writes ``1/ln a``; it is ``1/a``)."""
    return _unary("log", np.log, a, lambda g, x, out: g / x)


def sin(a: Node | ArrayLike) -> Node:
    """``sin a``: adjoint ``g cos a``."""
    return _unary("sin", np.sin, a, lambda g, x, out: g * np.cos(x))


def cos(a: Node | ArrayLike) -> Node:
    """``cos a``: adjoint ``-g sin a``."""
    return _unary("cos", np.cos, a, lambda g, x, out: -g * np.sin(x))


def tanh(a: Node | ArrayLike) -> Node:
    """``tanh a``: adjoint ``g (1 - tanh^2 a)``."""
    return _unary("tanh", np.tanh, a, lambda g, x, out: g * (1 - out * out))


def _sigmoid(x):
    # Two branches so that neither exp overflows.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid(a: Node | ArrayLike) -> Node:
    """``1 / (1 + e^-a)``: adjoint ``g s (1 - s)``."""
    return _unary("sigmoid", _sigmoid, a, lambda g, x, out: g * out * (1 - out))


def relu(a: Node | ArrayLike) -> Node:
    """``max(0, a)``: adjoint ``g 1{a > 0}`` (0 at the kink)."""
    return _unary("relu", lambda x: np.where(x > 0, x, 0.0).astype(x.dtype), a, lambda g, x, out: g * (x > 0))


def matmul(a: Node | ArrayLike, b: Node | ArrayLike) -> Node:
    """``a @ b`` with NumPy's rules (1-D operands, batched stacks): adjoints ``g b^T`` and ``a^T g``."""
    a, b = as_node(a), as_node(b)
    if a.value.ndim == 0 or b.value.ndim == 0:
        raise ValueError(f"matmul: operands must have at least one axis, got shapes {a.shape} and {b.shape}")
    try:
        value = np.matmul(a.value, b.value)
    except ValueError as e:
        raise _shapes_error("matmul", a, b, e) from None

    def vjp(g):
        x, y = a.value, b.value
        x2 = x[None, :] if x.ndim == 1 else x
        y2 = y[:, None] if y.ndim == 1 else y
        g2 = g[..., None] if y.ndim == 1 else g
        g2 = np.expand_dims(g2, -2) if x.ndim == 1 else g2
        gx = unbroadcast(g2 @ np.swapaxes(y2, -1, -2), x2.shape).reshape(x.shape)
        gy = unbroadcast(np.swapaxes(x2, -1, -2) @ g2, y2.shape).reshape(y.shape)
        return gx, gy

    return _make("matmul", value, (a, b), vjp)


def _axes(op: str, axis, ndim: int) -> tuple:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    if any(not -ndim <= ax < ndim for ax in axes):
        raise ValueError(f"{op}: axis {axis} is out of range for an input with {ndim} axes")
    return tuple(sorted(ax % ndim for ax in axes))


def _reduce(op: str, a, axis, keepdims: bool, scale_by_count: bool) -> Node:
    a = as_node(a)
    axes = _axes(op, axis, a.value.ndim)
    count = int(np.prod([a.shape[ax] for ax in axes])) if axes else 1
    value = np.sum(a.value, axis=axes, keepdims=keepdims)
    if scale_by_count:
        value = value / count

    def vjp(g):
        g = g if keepdims else np.expand_dims(g, axes)
        g = np.broadcast_to(g, a.shape)
        return (g / count if scale_by_count else g,)

    return _make(op, value, (a,), vjp)


def sum(a: Node | ArrayLike, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Node:
    """Sum over ``axis`` (all axes by default): the adjoint is copied back to every summed entry."""
    return _reduce("sum", a, axis, keepdims, scale_by_count=False)


def mean(a: Node | ArrayLike, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Node:
    """Mean over ``axis`` (all axes by default): the adjoint divided by the count is copied back."""
    return _reduce("mean", a, axis, keepdims, scale_by_count=True)


OPS = {
    "add": add,
    "sub": sub,
    "mul": mul,
    "div": div,
    "neg": neg,
    "pow": pow,
    "exp": exp,
    "log": log,
    "sin": sin,
    "cos": cos,
    "tanh": tanh,
    "sigmoid": sigmoid,
    "relu": relu,
    "matmul": matmul,
    "sum": sum,
    "mean": mean,
}
"""The engine's operations by name."""


def grad(fn: Callable, argnums: int | tuple[int, ...] = 0) -> Callable:
    """``grad(fn)(*args)``: the gradient of a scalar ``fn`` written with this module's ops.

    Positional arguments become input nodes; returns the adjoint of argument ``argnums``
    (a tuple of adjoints when ``argnums`` is a tuple).
    """

    def grad_fn(*args):
        nodes = [Node(a, name=f"arg{i}") for i, a in enumerate(args)]
        out = as_node(fn(*nodes))
        out.backward()
        grads = [n.grad if n.grad is not None else np.zeros_like(n.value) for n in nodes]
        return grads[argnums] if isinstance(argnums, int) else tuple(grads[i] for i in argnums)

    return grad_fn
