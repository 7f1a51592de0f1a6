"""The worked example (v0..v6) and the pictures: DOT text always, rendering when Graphviz is present."""

import os
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet import nn
from jaxnet.autodiff import draw, example
from jaxnet.autodiff import graph as G


@pytest.mark.parametrize("x1,x2", [(2.0, 5.0), (0.5, -1.3), (3.7, 0.0)])
def test_worked_example_values_adjoints_and_gradients(x64, x1, x2):
    ex = example.worked_example(x1, x2)
    v = {k: float(n.value) for k, n in ex.nodes.items()}
    bar = {k: float(n.grad) for k, n in ex.nodes.items()}
    assert v["v2"] == pytest.approx(np.log(x1)) and v["v3"] == pytest.approx(x1 * x2)
    assert v["v4"] == pytest.approx(np.sin(x2))
    assert v["v6"] == pytest.approx(np.log(x1) + x1 * x2 - np.sin(x2))
    assert (bar["v6"], bar["v5"], bar["v4"], bar["v3"], bar["v2"]) == (1.0, 1.0, -1.0, 1.0, 1.0)
    g1, g2 = example.true_gradients(x1, x2)
    assert bar["v0"] == pytest.approx(1 / x1 + x2, rel=1e-15) == pytest.approx(g1)
    assert bar["v1"] == pytest.approx(x1 - np.cos(x2), rel=1e-15) == pytest.approx(g2)
    want = jax.grad(lambda a, b: jnp.log(a) + a * b - jnp.sin(b), (0, 1))(x1, x2)
    np.testing.assert_allclose([bar["v0"], bar["v1"]], want, rtol=1e-14)


def test_worked_example_table():
    table = example.worked_example_table(2.0, 5.0)
    lines = table.splitlines()
    assert len(lines) == 2 + 7
    assert lines[2].split()[:4] == ["v0", "x1", "2.000000", "5.500000"]
    assert lines[3].split()[:4] == ["v1", "x2", "5.000000", f"{2 - np.cos(5.0):.6f}"]
    assert lines[-1].split() == ["v6", "v5", "-", "v4", f"{np.log(2) + 10 - np.sin(5.0):.6f}", "1.000000"]
    md = example.worked_example_table(2.0, 5.0, markdown=True)
    assert md.splitlines()[0] == "| node | definition | value | adjoint dy/dv |"
    assert "| v4 | sin(v1) | -0.958924 | -1.000000 |" in md
    with pytest.raises(ValueError, match="x1 must be positive"):
        example.worked_example(0.0, 1.0)


def test_dot_text_of_the_worked_example():
    ex = example.worked_example(2.0, 5.0)
    dot = draw.to_dot(ex.y, title="worked example")
    assert dot.startswith("digraph G {") and dot.rstrip().endswith("}")
    nodes = [line for line in dot.splitlines() if "[label=" in line]
    edges = [line for line in dot.splitlines() if "->" in line]
    assert len(nodes) == 7 and len(edges) == 8  # v3 and v4 share v1, v2 and v3 share v0
    assert any("v2: log" in line and "value = 0.6931" in line and "grad = 1" in line for line in nodes)
    assert any("v0: input" in line and "grad = 5.5" in line for line in nodes)
    tb = draw.to_dot(ex.y, rankdir="TB")
    assert "{v6: sub" in tb  # records turned to stack vertically in a top-to-bottom layout


def test_dot_of_an_array_graph_summarises_values():
    a = G.Node(np.ones((2, 3)), name="a")
    out = G.sum(G.tanh(a @ np.ones((3, 4))))
    dot = draw.to_dot(out)
    assert "float64[2, 3] \\|max\\|=1" in dot
    with pytest.raises(TypeError, match="expected a graph Node"):
        draw.to_dot(3.0)


def test_jaxpr_dot_of_a_function():
    dot = draw.jaxpr_to_dot(lambda a, b: jnp.sin(a) * b + 1.0, jnp.ones(3), jnp.ones(3))
    labels = [line for line in dot.splitlines() if "[label=" in line]
    assert any('"arg0\\nfloat32[3]"' in line for line in labels)
    assert any('"arg1\\nfloat32[3]"' in line for line in labels)
    assert sum('"sin\\nfloat32[3]"' in line for line in labels) == 1
    assert sum('"mul\\nfloat32[3]"' in line for line in labels) == 1
    assert any("output float32[3]" in line for line in labels)


def test_jaxpr_dot_of_a_model_loss_shows_params_and_calls():
    model = nn.MLP([4, 3], activation="relu")
    _, params, state = model.init(jax.random.PRNGKey(0), (-1, 2))
    x, y = jnp.ones((5, 2)), jnp.zeros(5, jnp.int32)
    dot = draw.loss_graph_dot(model, params, state, x, y, "softmax_cross_entropy_with_integer_labels")
    for path in ("dense_0/w", "dense_0/b", "dense_2/w", "dense_2/b"):
        assert f'"{path}\\n' in dot
    assert "subgraph cluster_" in dot and "log_softmax" in dot
    assert dot.count("dot_general") == 2
    flat = draw.loss_graph_dot(
        model, params, state, x, y, "softmax_cross_entropy_with_integer_labels", expand_calls=False
    )
    assert "subgraph" not in flat


def test_render_errors_without_dot_and_for_bad_formats(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="format must be svg, png or pdf, got 'gif'"):
        draw.render("digraph { a }", str(tmp_path / "g.gif"))
    with pytest.raises(ValueError, match="engine must be 'auto', 'dot' or 'matplotlib', got 'neato'"):
        draw.render("digraph { a }", str(tmp_path / "g.svg"), engine="neato")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert not draw.has_dot()
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        draw.render("digraph { a }", str(tmp_path / "g.svg"), engine="dot")


# Without Graphviz, render falls back to matplotlib: these run on every machine.
@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_render_the_worked_example_and_a_jaxpr(tmp_path, fmt):
    path = draw.render(draw.to_dot(example.worked_example().y), str(tmp_path / f"example.{fmt}"))
    data = Path(path).read_bytes()
    if fmt == "svg":
        assert b"<svg" in data and b"v2: log" in data
    else:
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
    path = draw.render(draw.jaxpr_to_dot(lambda a: jnp.exp(a).sum(), jnp.ones(2)), str(tmp_path / f"jaxpr.{fmt}"))
    assert os.path.getsize(path) > 100


def test_render_reports_dot_failures(tmp_path):
    with pytest.raises(RuntimeError, match=r"dot failed|matplotlib failed on the DOT text"):
        draw.render("this is not dot", str(tmp_path / "bad.svg"))
