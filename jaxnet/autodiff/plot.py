"""Computational graphs drawn with matplotlib: no Graphviz needed.

:func:`parse_dot` reads the DOT text that :mod:`jaxnet.autodiff.draw` writes (nodes with a
``label``, edges ``a -> b``, clusters, graph attributes); :func:`layered_layout` puts every
node on the layer of its longest path from an input and orders each layer by the mean
position of its parents (a simple Sugiyama-style layout); :func:`plot_dot` draws boxes and
arrows on a matplotlib figure, and :func:`save_dot` writes it as PNG, SVG or PDF.
"""

from __future__ import annotations

import re
from typing import Any

_NODE = re.compile(r"^\s*(\w+)\s*\[(.*)\];\s*$")
_EDGE = re.compile(r"^\s*(\w+)\s*->\s*(\w+)\s*;\s*$")
_LABEL = re.compile(r'label="((?:[^"\\]|\\.)*)"')
_GRAPH_LINE = re.compile(r"^\s*(digraph\b.*\{|subgraph\b.*\{|\}|rankdir=\w+;|node\s*\[.*\];|label=.*;.*)\s*$")


def _unescape(text: str) -> str:
    """DOT label text to display text: ``\\n`` and record separators ``|`` become line breaks."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append("\n" if nxt == "n" else nxt)
            i += 2
            continue
        if c == "|":
            out.append("\n")
        elif c not in "{}":
            out.append(c)
        i += 1
    return "\n".join(line.strip() for line in "".join(out).split("\n"))


def parse_dot(text: str) -> dict:
    """Read the DOT subset jaxnet writes.

    Returns:
      ``{"nodes": {id: label}, "edges": [(src, dst)], "rankdir": "LR" | "TB", "title": str | None}``,
      nodes in the order they appear.

    Raises:
      ValueError: for a line that is neither a node, an edge nor a graph attribute, naming it,
        for an edge to an undeclared node, or for text with no ``digraph``.
    """
    if not isinstance(text, str) or "digraph" not in text:
        raise ValueError(f"parse_dot: expected DOT text starting with 'digraph', got {str(text)[:40]!r}")
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    rankdir, title, depth = "TB", None, 0
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        edge = _EDGE.match(line)
        node = _NODE.match(line)
        if edge:
            edges.append((edge.group(1), edge.group(2)))
        elif node and node.group(1) not in ("node", "graph", "edge"):
            label = _LABEL.search(node.group(2))
            nodes[node.group(1)] = _unescape(label.group(1)) if label else node.group(1)
        elif _GRAPH_LINE.match(line):
            if line.strip().startswith("rankdir="):
                rankdir = line.strip()[len("rankdir=") : -1]
            label = _LABEL.search(line)
            if label and depth == 1 and line.strip().startswith("label="):
                title = _unescape(label.group(1))
            depth += line.count("{") - line.count("}") if not node else 0
        else:
            raise ValueError(f"parse_dot: line {number} is not a node, edge or graph attribute: {line.strip()!r}")
    for a, b in edges:
        for end in (a, b):
            if end not in nodes:
                raise ValueError(f"parse_dot: edge {a} -> {b} names the undeclared node {end!r}")
    return {"nodes": nodes, "edges": edges, "rankdir": rankdir, "title": title}


def layered_layout(nodes, edges) -> dict[str, tuple[int, float]]:
    """``{node: (layer, position)}``: layer = longest path from a source, positions ordered to shorten edges."""
    parents: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        parents[b].append(a)
    layer: dict[str, int] = {}

    def depth(n, seen=()):
        if n not in layer:
            if n in seen:
                raise ValueError(f"layered_layout: the graph has a cycle through {n!r}")
            layer[n] = 1 + max((depth(p, (*seen, n)) for p in parents[n]), default=-1)
        return layer[n]

    for n in nodes:
        depth(n)
    layers: dict[int, list[str]] = {}
    for n in nodes:
        layers.setdefault(layer[n], []).append(n)
    pos: dict[str, float] = {}
    for k in sorted(layers):
        members = layers[k]
        if k > 0:  # barycenter of the parents, ties kept in declaration order
            members.sort(key=lambda n: sum(pos[p] for p in parents[n]) / max(len(parents[n]), 1))
        width = len(members)
        for i, n in enumerate(members):
            pos[n] = i - (width - 1) / 2
    return {n: (layer[n], pos[n]) for n in nodes}


def plot_dot(text: str, *, ax=None, fontsize: float = 8.0) -> Any:
    """Draw DOT text (from :func:`~jaxnet.autodiff.draw.to_dot` or ``jaxpr_to_dot``) with matplotlib.

    Inputs (no parents) are shaded blue, outputs (no children) red; edges are arrows.

    Args:
      text: DOT text.
      ax: an axes to draw on; a new figure sized to the graph when ``None``.
      fontsize: label font size in points.

    Returns:
      The matplotlib ``Figure``.

    Raises:
      ValueError: for DOT text :func:`parse_dot` cannot read.
      ImportError: when matplotlib is missing.
    """
    g = parse_dot(text)
    place = layered_layout(g["nodes"], g["edges"])
    try:
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("plot_dot needs matplotlib: pip install 'jaxnet[examples]'") from e
    n_layers = 1 + max((lay for lay, _ in place.values()), default=0)
    spread = max((abs(p) for _, p in place.values()), default=0.0) * 2 + 1
    horizontal = g["rankdir"] in ("LR", "RL")
    if ax is None:
        size = (2.6 * n_layers, 1.3 * spread + 0.6) if horizontal else (2.3 * spread, 1.0 * n_layers + 0.6)
        fig = Figure(figsize=(min(max(size[0], 4), 30), min(max(size[1], 3), 40)))  # no pyplot: no global state
        ax = fig.add_subplot()
    else:
        fig = ax.figure

    def xy(n):
        lay, p = place[n]
        return (lay * 2.6, -p * 1.3) if horizontal else (p * 2.3, -lay * 1.0)

    has_parent = {b for _, b in g["edges"]}
    has_child = {a for a, _ in g["edges"]}
    boxes = {}
    for n, label in g["nodes"].items():
        color = "#e8f0fe" if n not in has_parent else ("#fde8e8" if n not in has_child else "white")
        boxes[n] = ax.text(
            *xy(n), label, ha="center", va="center", fontsize=fontsize, family="monospace",
            bbox={"boxstyle": "round,pad=0.3", "fc": color, "ec": "0.3"},
        )  # fmt: skip
    for a, b in g["edges"]:  # arrows clipped to the label boxes, so their heads show
        style = {"arrowstyle": "-|>", "color": "0.4", "shrinkA": 1, "shrinkB": 1}
        style.update(patchA=boxes[a].get_bbox_patch(), patchB=boxes[b].get_bbox_patch())
        ax.annotate("", xy=xy(b), xytext=xy(a), arrowprops=style)
    xs = [xy(n)[0] for n in g["nodes"]] or [0.0]
    ys = [xy(n)[1] for n in g["nodes"]] or [0.0]
    ax.set_xlim(min(xs) - 1.3, max(xs) + 1.3)
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    ax.axis("off")
    if g["title"]:
        ax.set_title(g["title"], fontsize=fontsize + 2)
    return fig


def save_dot(text: str, path: str, *, format: str | None = None) -> str:
    """Draw DOT text with :func:`plot_dot` and write it to ``path`` (PNG, SVG with real text, or PDF); returns ``path``.

    Raises:
      ValueError: for an unsupported format or unreadable DOT text.
    """
    import os

    fmt = (format or os.path.splitext(path)[1].lstrip(".")).lower()
    if fmt not in ("svg", "png", "pdf"):
        raise ValueError(f"save_dot: format must be svg, png or pdf, got {fmt!r} (from path {path!r})")
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none"}):  # keep labels as searchable <text>
        plot_dot(text).savefig(path, format=fmt, dpi=110, bbox_inches="tight")
    return path
