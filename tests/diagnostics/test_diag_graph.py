"""graph(): DOT text of the computation graph; render_graph() with or without Graphviz."""

from __future__ import annotations

import importlib
import re
import shutil

import pytest

import deepwise as dw
from deepwise import nn
from deepwise.diagnostics.graphviz import graph, render_graph

# the module itself (the package may re-export the function under the same name)
graph_mod = importlib.import_module("deepwise.diagnostics.graphviz")


def _loss():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = dw.randn(5, 3)
    y = dw.tensor([0, 1, 1, 0, 1])
    loss = nn.functional.cross_entropy(model(x), y)
    return model, x, loss


def test_dot_names_ops_shapes_and_parameters():
    model, x, loss = _loss()
    dot = graph(loss, params=dict(model.named_parameters()))
    assert dot.startswith('digraph "deepwise" {') and dot.rstrip().endswith("}")
    for op, shape in (("Linear", "(5, 4)"), ("ReLU", "(5, 4)"), ("Linear", "(5, 2)"), ("CrossEntropy", "()")):
        assert f'label="{op}\\n{shape}"' in dot, (op, shape)
    for name, shape in (("0.weight", "(4, 3)"), ("0.bias", "(4,)"), ("2.weight", "(2, 4)"), ("2.bias", "(2,)")):
        assert f'label="{name}\\n{shape} float32"' in dot
    assert 'label="tensor\\n(5, 3) float32"' in dot  # the input, a constant
    # 4 op nodes, 4 parameters and x (the targets reach the loss as a plain array); edges join declared nodes
    nodes = set(re.findall(r"^  ([nt]\d+) \[", dot, flags=re.M))
    edges = re.findall(r"^  ([nt]\d+) -> ([nt]\d+);", dot, flags=re.M)
    assert len([n for n in nodes if n.startswith("n")]) == 4 and len(nodes) == 9
    assert len(edges) == 8 and all(a in nodes and b in nodes for a, b in edges)
    assert dot.count("peripheries=2") == 1  # the loss


def test_leaves_and_options():
    a = dw.tensor([1.0, 2.0], requires_grad=True)
    c = dw.tensor([3.0, 4.0])
    out = (a * c).log()
    dot = graph(out, show_constants=False)
    assert "leaf (requires grad)" in dot and "(2,) float32" in dot
    assert "tensor\\n" not in dot  # the constant c is left out
    assert 'label="Mul\\n(2,)"' in dot and 'label="Log\\n(2,)"' in dot
    lone = graph(a)
    assert "leaf (requires grad)" in lone and "->" not in lone


def test_freed_graph_is_explained():
    _, _, loss = _loss()
    loss.backward()
    with pytest.raises(RuntimeError, match="freed by backward"):
        graph(loss)


def test_render_without_graphviz_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(graph_mod.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="Graphviz"):
        render_graph("digraph { a -> b; }", tmp_path / "g.svg")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
def test_render_svg(tmp_path):
    _, _, loss = _loss()
    path = render_graph(graph(loss), tmp_path / "g.svg")
    text = open(path, encoding="utf-8").read()
    assert "<svg" in text and "CrossEntropy" in text
