"""Pictures of computational graphs as Graphviz DOT text, rendered when ``dot`` is installed.

* :func:`to_dot` draws a graph of :mod:`jaxnet.autodiff.graph` nodes: each node shows its
  label, operation, forward value and adjoint.
* :func:`jaxpr_to_dot` draws the graph JAX itself traces for any function (its jaxpr):
  inputs, one node per primitive with its output shape, and the outputs. Use it to look
  at the graph of your own model's loss (:func:`loss_graph_dot`).
* :func:`render` turns DOT text into SVG or PNG with the ``dot`` program (Debian/Ubuntu
  package ``graphviz``) when it is installed, else with matplotlib
  (:mod:`jaxnet.autodiff.plot`); DOT text itself needs nothing installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import numpy as np

from jaxnet.autodiff.graph import Node, topological_order
from jaxnet.types import Array, Layer, Params, State


def _quote(s: str) -> str:
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _fmt(a, precision: int) -> str:
    if a is None:
        return "-"
    a = np.asarray(a)
    if a.size == 1:
        return f"{float(a.reshape(())):.{precision}g}"
    return f"{a.dtype}{list(a.shape)} |max|={float(np.max(np.abs(a))):.{precision}g}"


def to_dot(output: Node, *, title: str | None = None, precision: int = 4, rankdir: str = "LR") -> str:
    """DOT text for the graph that ``output`` depends on.

    Each node is drawn as ``name: op / value / grad`` (scalars printed, arrays summarised by
    dtype, shape and largest magnitude); edges run from parents to children.

    Args:
      output: the graph's final node.
      title: an optional caption.
      precision: significant digits of the printed numbers.
      rankdir: Graphviz layout direction (``"LR"`` left to right, ``"TB"`` top to bottom).

    Returns:
      The DOT source as a string.
    """
    if not isinstance(output, Node):
        raise TypeError(f"to_dot: expected a graph Node, got {type(output).__name__}")
    order = topological_order(output)
    ids = {n._id: f"n{i}" for i, n in enumerate(order)}
    lines = ["digraph G {", f"  rankdir={rankdir};", '  node [shape=record, fontname="Helvetica"];']
    if title:
        lines.append(f"  label={_quote(title)}; labelloc=t;")
    for n in order:
        head = f"{n.name}: {n.op}" if n.name else n.op
        # A record's fields stack across the layout direction; braces turn them so they stack vertically.
        open_, close = ("", "") if rankdir in ("LR", "RL") else ("{", "}")
        label = (
            open_
            + " | ".join(
                _quote(part)[1:-1]
                .replace("{", "\\{")
                .replace("}", "\\}")
                .replace("|", "\\|")
                .replace("<", "\\<")
                .replace(">", "\\>")
                for part in (head, f"value = {_fmt(n.value, precision)}", f"grad = {_fmt(n.grad, precision)}")
            )
            + close
        )
        style = ', style=filled, fillcolor="#e8f0fe"' if n.op == "input" else ""
        lines.append(f'  {ids[n._id]} [label="{label}"{style}];')
    for n in order:
        for p in n.parents:
            lines.append(f"  {ids[p._id]} -> {ids[n._id]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def has_dot() -> bool:
    """Whether the Graphviz ``dot`` program is on ``PATH``."""
    return shutil.which("dot") is not None


def render(dot_source: str, path: str, *, format: str | None = None, engine: str = "auto") -> str:
    """Render DOT text to an image file with Graphviz, or with matplotlib where Graphviz is missing.

    Args:
      dot_source: DOT text (from :func:`to_dot` or :func:`jaxpr_to_dot`).
      path: output file; its extension picks the format unless ``format`` is given.
      format: ``"svg"``, ``"png"`` or ``"pdf"``.
      engine: ``"dot"`` (Graphviz), ``"matplotlib"`` (``jaxnet.autodiff.plot.save_dot``,
        a layered drawing) or ``"auto"`` (``dot`` when on ``PATH``, else matplotlib).

    Returns:
      ``path``.

    Raises:
      RuntimeError: if ``engine="dot"`` and ``dot`` is not installed (``apt-get install graphviz``),
        or the renderer fails on the DOT text.
      ValueError: for an unsupported format or engine.
    """
    fmt = (format or os.path.splitext(path)[1].lstrip(".")).lower()
    if fmt not in ("svg", "png", "pdf"):
        raise ValueError(f"render: format must be svg, png or pdf, got {fmt!r} (from path {path!r})")
    if engine not in ("auto", "dot", "matplotlib"):
        raise ValueError(f"render: engine must be 'auto', 'dot' or 'matplotlib', got {engine!r}")
    if engine == "matplotlib" or (engine == "auto" and not has_dot()):
        from jaxnet.autodiff.plot import save_dot

        try:
            return save_dot(dot_source, path, format=fmt)
        except ValueError as e:
            raise RuntimeError(f"render: matplotlib failed on the DOT text: {e}") from e
    exe = shutil.which("dot")
    if exe is None:
        raise RuntimeError(
            "render: the Graphviz 'dot' program was not found on PATH; install it "
            "(Debian/Ubuntu: apt-get install graphviz) or save the DOT text and render it elsewhere"
        )
    proc = subprocess.run([exe, f"-T{fmt}", "-o", path], input=dot_source.encode(), capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"render: dot failed with exit status {proc.returncode}: {proc.stderr.decode().strip()}")
    return path


def _aval(v) -> str:
    aval = getattr(v, "aval", None)
    shape = getattr(aval, "shape", None)
    dtype = getattr(aval, "dtype", None)
    if shape is None:
        return ""
    return f"{dtype}{list(shape)}"


def _inner_jaxpr(eqn):
    """The sub-jaxpr a call-like primitive (jit, custom_jvp/vjp) wraps, if it maps inputs one to one."""
    for value in eqn.params.values():
        inner = getattr(value, "jaxpr", value)  # ClosedJaxpr -> Jaxpr
        if (
            hasattr(inner, "eqns")
            and hasattr(inner, "invars")
            and len(inner.invars) == len(eqn.invars)
            and len(inner.outvars) == len(eqn.outvars)
        ):
            return inner
    return None


def jaxpr_to_dot(
    fn: Callable, *args: Any, expand_calls: bool = True, title: str | None = None, rankdir: str = "TB", **kwargs: Any
) -> str:
    """DOT text for the graph JAX traces for ``fn(*args, **kwargs)`` (its jaxpr).

    Inputs are shaded boxes (labelled with their pytree path, e.g. ``dense_0/w``), every
    primitive an ellipse with its output shape, constants small grey boxes. Calls to
    sub-functions (``jit``, ``custom_jvp`` activations such as ``relu``) are drawn as
    labelled clusters of their own primitives when ``expand_calls`` is true, as one node otherwise.

    Args:
      fn: any function JAX can trace.
      *args: example arguments (arrays or pytrees; only shapes and dtypes matter).
      **kwargs: example keyword arguments, alike.
      expand_calls: draw the inside of nested calls.
      title: an optional caption.
      rankdir: Graphviz layout direction.

    Returns:
      The DOT source as a string.
    """
    import jax

    closed = jax.make_jaxpr(lambda *a: fn(*a, **kwargs))(*args)
    paths = []
    for i, arg in enumerate(args):
        for path, _ in jax.tree_util.tree_flatten_with_path(arg)[0]:
            inner = jax.tree_util.keystr(path, simple=True, separator="/")
            paths.append("/".join(s for s in (f"arg{i}" if len(args) > 1 else "", inner) if s) or "input")
    lines = ["digraph jaxpr {", f"  rankdir={rankdir};", '  node [fontname="Helvetica"];']
    if title:
        lines.append(f"  label={_quote(title)}; labelloc=t;")
    counter = iter(range(10**9))

    def new_id(prefix):
        return f"{prefix}{next(counter)}"

    def source(v, env, indent):
        if hasattr(v, "val"):  # a Literal: a constant folded into the equation
            nid = new_id("c")
            val = np.asarray(v.val)
            text = f"{float(val):.4g}" if val.size == 1 else _aval(v)
            lines.append(f"{indent}{nid} [label={_quote(text)}, shape=box, fontsize=9, color=gray];")
            return nid
        return env[v]

    def emit(jaxpr, env, indent):
        for eqn in jaxpr.eqns:
            inner = _inner_jaxpr(eqn) if expand_calls else None
            ins = [source(v, env, indent) for v in eqn.invars]
            if inner is not None:
                name = (
                    eqn.params.get("name") or getattr(eqn.params.get("call_jaxpr"), "name", None) or eqn.primitive.name
                )
                cluster = new_id("cluster_")
                lines.append(f"{indent}subgraph {cluster} {{")
                lines.append(f"{indent}  label={_quote(f'{eqn.primitive.name}: {name}')}; style=dashed;")
                inner_env = {}
                for iv, src in zip(inner.invars, ins, strict=True):
                    inner_env[iv] = src
                for cv in inner.constvars:
                    cid = new_id("k")
                    lines.append(f"{indent}  {cid} [label={_quote('const ' + _aval(cv))}, shape=box, color=gray];")
                    inner_env[cv] = cid
                emit(inner, inner_env, indent + "  ")
                lines.append(f"{indent}}}")
                for ov, iv in zip(eqn.outvars, inner.outvars, strict=True):
                    env[ov] = source(iv, inner_env, indent)
                continue
            nid = new_id("e")
            outs = ", ".join(_aval(o) for o in eqn.outvars)
            lines.append(f"{indent}{nid} [label={_quote(eqn.primitive.name + chr(10) + outs)}];")
            for src in ins:
                lines.append(f"{indent}{src} -> {nid};")
            for ov in eqn.outvars:
                env[ov] = nid

    env = {}
    for i, v in enumerate(closed.jaxpr.invars):
        nid = f"in{i}"
        label = (paths[i] if i < len(paths) and paths[i] else f"arg{i}") + "\n" + _aval(v)
        lines.append(f'  {nid} [label={_quote(label)}, shape=box, style=filled, fillcolor="#e8f0fe"];')
        env[v] = nid
    for i, v in enumerate(closed.jaxpr.constvars):
        nid = f"const{i}"
        lines.append(f"  {nid} [label={_quote('const ' + _aval(v))}, shape=box, color=gray];")
        env[v] = nid
    emit(closed.jaxpr, env, "  ")
    for i, v in enumerate(closed.jaxpr.outvars):
        nid = f"out{i}"
        lines.append(f'  {nid} [label={_quote("output " + _aval(v))}, shape=box, style=filled, fillcolor="#fde8e8"];')
        lines.append(f"  {source(v, env, '  ')} -> {nid};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def loss_graph_dot(
    model: Layer,
    params: Params,
    state: State,
    x: Array,
    y: Array,
    loss: str | Callable[..., Array],
    *,
    where: Array | None = None,
    train: bool = False,
    key: Array | None = None,
    expand_calls: bool = True,
) -> str:
    """DOT text of the jaxpr of ``params -> loss(model.apply(params, state, x), y)``.

    Args:
      model: a :class:`~jaxnet.types.Layer`.
      params, state, x, y: as for training; only shapes and dtypes matter.
      loss: a loss function or its name in :data:`jaxnet.nn.losses.LOSSES`.
      where: optional per-sample weights passed to the loss.
      train: the mode to trace (``False`` by default: no dropout key needed).
      key: PRNG key for stochastic layers when ``train=True``.
      expand_calls: draw the inside of nested calls.
    """
    from jaxnet.nn.losses import get_loss

    loss_fn = get_loss(loss)

    def objective(p):
        out, _ = model.apply(p, state, x, key=key, train=train)
        return loss_fn(out, y, where)

    return jaxpr_to_dot(objective, params, expand_calls=expand_calls, title=f"loss graph of {model.name}")
