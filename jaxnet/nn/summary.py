"""Seeing a model: :func:`summary` (a table of layers, shapes and parameter counts, like Keras'
``Model.summary()`` and Flax's ``tabulate``) and :func:`tree_summary` (the shapes and dtypes of a
params or state tree).

Both work from shapes only: :func:`summary` runs every ``init`` under :func:`jax.eval_shape`, so
nothing is allocated, no random numbers are drawn and no FLOPs are spent, even for a model far
larger than memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxnet.nn.combinators import layer_keys
from jaxnet.nn.core import check_shape, fmt_shape
from jaxnet.types import Layer


class SummaryRow(NamedTuple):
    """One layer of a :class:`ModelSummary`.

    Attributes:
      path: where its params live, keys joined by ``/`` (``"residual_1/serial_0/dense_0"``).
      layer: its display name (``"Dense(64)"``).
      kind: its kind (``"dense"``).
      output_shape: its output shape (``-1`` for the batch), or a tuple of shapes for branches.
      params: number of parameter values (of its whole subtree, for a combinator).
      param_bytes: bytes those parameters take.
      state: number of state values (running statistics).
      depth: nesting depth (0 for the model's own layers).
    """

    path: str
    layer: str
    kind: str
    output_shape: tuple
    params: int
    param_bytes: int
    state: int
    depth: int


class ModelSummary(NamedTuple):
    """What :func:`summary` returns; ``str()`` of it is the printed table.

    Attributes:
      rows: one :class:`SummaryRow` per layer, depth first, combinators before their layers.
      input_shape, output_shape: the model's.
      total_params, total_bytes, total_state: counted once over the whole model (a combinator's
        row repeats its layers' counts, the totals do not).
    """

    rows: tuple[SummaryRow, ...]
    input_shape: tuple
    output_shape: tuple
    total_params: int
    total_bytes: int
    total_state: int

    def __str__(self) -> str:
        return _table(self)


def _count(tree) -> tuple[int, int]:
    leaves = jax.tree_util.tree_leaves(tree)
    return sum(math.prod(a.shape) for a in leaves), sum(math.prod(a.shape) * np.dtype(a.dtype).itemsize for a in leaves)


def _shapes(layer: Layer, input_shape):
    """``layer.init`` under ``jax.eval_shape``: output shape and ShapeDtypeStruct trees, nothing computed."""
    box = {}

    def run(key):
        try:
            out, params, state = layer.init(key, input_shape)
        except (ValueError, TypeError) as e:  # re-raised below, outside JAX's frames, with the layer's message
            box["error"] = e
            return {}, {}
        box["out"] = out
        return params, state

    params, state = jax.eval_shape(run, jax.random.PRNGKey(0))
    if "error" in box:
        raise box["error"]
    return box["out"], params, state


def _children(layer: Layer, input_shape, out_shape) -> list[tuple[str, Layer, Any]]:
    """``(key, sublayer, its input shape)`` for the combinators whose wiring is known."""
    keys = layer_keys(layer.layers) if layer.layers else ()
    if layer.kind == "serial":
        found, shape = [], input_shape
        for k, sub in zip(keys, layer.layers, strict=True):
            found.append((k, sub, shape))
            shape = _shapes(sub, shape)[0]
        return found
    if layer.kind == "residual":
        return [(keys[0], layer.layers[0], input_shape)]
    if layer.kind == "parallel":
        return list(zip(keys, layer.layers, input_shape, strict=True))
    return []  # a leaf, or a combinator of unknown wiring: one row for all of it


def _walk(layer: Layer, path: str, input_shape, depth: int, rows: list) -> None:
    out, params, state = _shapes(layer, input_shape)
    n, nbytes = _count(params)
    rows.append(SummaryRow(path, layer.name, layer.kind, out, n, nbytes, _count(state)[0], depth))
    for k, sub, shape in _children(layer, input_shape, out):
        _walk(sub, f"{path}/{k}", shape, depth + 1, rows)


def _fmt(shape) -> str:
    if shape and isinstance(shape[0], tuple):
        return "(" + ", ".join(_fmt(s) for s in shape) + ")"
    return fmt_shape(shape)


def human_bytes(n: int) -> str:
    """``n`` bytes as ``"812 B"``, ``"3.1 KiB"``, ``"2.0 MiB"``, ... (powers of 1024)."""
    size, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            break
        size /= 1024
    return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"


def _table(s: ModelSummary) -> str:
    header = ("path", "layer", "kind", "output shape", "params", "bytes", "state")
    body = [
        (
            "  " * r.depth + r.path.rsplit("/", 1)[-1],
            r.layer if len(r.layer) <= 32 else r.layer[:29] + "...",
            r.kind,
            _fmt(r.output_shape),
            f"{r.params:,}",
            human_bytes(r.param_bytes),
            f"{r.state:,}",
        )
        for r in s.rows
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(row) -> str:
        return "  ".join(c.ljust(w) if i < 4 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    rule = "-" * len(line(header))
    total = (
        f"Total: {s.total_params:,} params ({human_bytes(s.total_bytes)}), {s.total_state:,} state values; "
        f"input {_fmt(s.input_shape)} -> output {_fmt(s.output_shape)}"
    )
    return "\n".join([line(header), rule, *(line(r) for r in body), rule, total])


def summary(model: Layer, input_shape, *, print_fn: Callable[[str], Any] | None = print) -> ModelSummary:
    """A table of the model's layers: path, layer, kind, output shape, parameter count and bytes, state count.

    Like Keras' ``Model.summary()`` and Flax's ``Module.tabulate``. Computed from shapes only
    (every ``init`` runs under :func:`jax.eval_shape`): no parameter is allocated.

    Args:
      model: any layer; ``serial``, ``residual`` and ``parallel`` are opened up into their layers.
      input_shape: the input shape with the batch axis (``-1`` for any batch), as ``init`` takes it.
      print_fn: called with the table's text (default :func:`print`); ``None`` prints nothing.

    Returns:
      A :class:`ModelSummary`: the rows, the totals, and the table as ``str(result)``.

    Raises:
      TypeError/ValueError: as ``model.init`` raises for this ``input_shape``.

    Example::

        jaxnet.summary(MLP([64, 10]), (-1, 784))   # 784*64 + 64 + 64*10 + 10 = 50,890 params
    """
    if not isinstance(model, Layer):
        raise TypeError(f"summary: model must be a Layer, got {type(model).__name__}")
    input_shape = check_shape("summary", input_shape)
    out, params, state = _shapes(model, input_shape)
    rows: list[SummaryRow] = []
    children = _children(model, input_shape, out)
    if children:
        for k, sub, shape in children:
            _walk(sub, k, shape, 0, rows)
    else:
        _walk(model, layer_keys((model,))[0], input_shape, 0, rows)
    n, nbytes = _count(params)
    result = ModelSummary(tuple(rows), input_shape, out, n, nbytes, _count(state)[0])
    if print_fn is not None:
        print_fn(str(result))
    return result


def tree_summary(tree, *, print_fn: Callable[[str], Any] | None = print) -> str:
    """The leaves of a params or state tree as ``path  dtype[shape]  count``, and a total line.

    Shapes and dtypes only, never the values: ``dense_0/w  float32[784, 64]  50,176``.

    Args:
      tree: any pytree of arrays (or of ``jax.ShapeDtypeStruct``).
      print_fn: called with the text (default :func:`print`); ``None`` prints nothing.

    Returns:
      The text.
    """
    found = jax.tree_util.tree_leaves_with_path(tree)
    body = []
    for path, leaf in found:
        shape, dtype = tuple(np.shape(leaf)), np.dtype(getattr(leaf, "dtype", np.asarray(leaf).dtype))
        name = jax.tree_util.keystr(path, simple=True, separator="/") or "(root)"
        body.append((name, f"{dtype.name}[{', '.join(map(str, shape))}]", f"{math.prod(shape):,}"))
    n = sum(math.prod(np.shape(leaf)) for _, leaf in found)
    nbytes = sum(
        math.prod(np.shape(leaf)) * np.dtype(getattr(leaf, "dtype", np.asarray(leaf).dtype)).itemsize
        for _, leaf in found
    )
    w0 = max([len(b[0]) for b in body] + [4])
    w1 = max([len(b[1]) for b in body] + [5])
    w2 = max([len(b[2]) for b in body] + [1])
    lines = [f"{a.ljust(w0)}  {b.ljust(w1)}  {c.rjust(w2)}" for a, b, c in body]
    lines.append(f"Total: {n:,} values in {len(body)} arrays ({human_bytes(nbytes)})")
    text = "\n".join(lines)
    if print_fn is not None:
        print_fn(text)
    return text
