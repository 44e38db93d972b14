"""feature_maps through a CNN, and the filter / feature-map figures."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import deepwise as dw
from deepwise import nn
from deepwise.diagnostics.features import feature_maps, plot_feature_maps, plot_filters


def _cnn():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.Dropout(0.5), nn.Flatten(), nn.Linear(6 * 4 * 4, 10),
    )


def test_default_layers_are_the_spatial_outputs_in_running_order(digits):
    x = digits[0][:2].reshape(-1, 1, 8, 8)
    model = _cnn()
    maps = feature_maps(model, x)
    assert list(maps) == ["0", "1", "2", "3", "4", "5"]  # Flatten and Linear outputs are not maps
    assert {k: v.shape for k, v in maps.items()} == {
        "0": (2, 4, 8, 8), "1": (2, 4, 8, 8), "2": (2, 4, 4, 4), "3": (2, 6, 4, 4), "4": (2, 6, 4, 4),
        "5": (2, 6, 4, 4)}
    assert all(isinstance(v, np.ndarray) for v in maps.values())
    # the values are the layers' outputs: the first conv by hand, then the ReLU of it
    with dw.no_grad():
        first = model[0](dw.tensor(x)).numpy()
    np.testing.assert_allclose(maps["0"], first, rtol=1e-6)
    np.testing.assert_array_equal(maps["1"], np.maximum(maps["0"], 0))
    # eval mode: the dropout layer passed its input through unchanged
    np.testing.assert_array_equal(maps["5"], maps["4"])


def test_hooks_removed_modes_restored_no_graph():
    model = _cnn()
    model.train()
    x = dw.randn(1, 1, 8, 8)
    maps = feature_maps(model, x, layers=["0", nn.ReLU])
    assert list(maps) == ["0", "1", "4"]
    assert model.training and all(m.training for m in model.modules())
    assert all(not m._forward_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters())


def test_layer_selection_errors():
    model = _cnn()
    with pytest.raises(KeyError, match="no layer '9'"):
        feature_maps(model, dw.randn(1, 1, 8, 8), layers=["9"])
    with pytest.raises(ValueError, match="no LSTM layer"):
        feature_maps(model, dw.randn(1, 1, 8, 8), layers=[nn.LSTM])
    with pytest.raises(ValueError, match="not a layer of this model"):
        feature_maps(model, dw.randn(1, 1, 8, 8), layers=[nn.Linear(2, 2)])


def test_mlp_without_spatial_outputs_gives_every_layer():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    maps = feature_maps(model, np.ones((5, 4), np.float32))
    assert {k: v.shape for k, v in maps.items()} == {"0": (5, 3), "1": (5, 3), "2": (5, 2)}


def test_plots_return_figures_with_one_image_per_filter_and_channel(digits):
    pytest.importorskip("matplotlib")
    model = _cnn()
    fig = plot_filters(model[0])
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 4
    assert images[0].images[0].get_array().shape == (3, 3)
    maps = feature_maps(model, digits[0][:1].reshape(-1, 1, 8, 8))
    fig = plot_feature_maps(maps, layers=["0", "2", "3"], max_channels=5)
    assert sum(len(ax.images) for ax in fig.axes) == 4 + 4 + 5
    rgb = plot_filters(nn.Conv2d(3, 2, 5))
    assert [ax for ax in rgb.axes if ax.images][0].images[0].get_array().shape == (5, 5, 3)
    with pytest.raises(ValueError, match="2-D convolution"):
        plot_filters(nn.Linear(2, 2))


def test_plots_without_matplotlib_say_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"deepwise\[report\]"):
        plot_filters(nn.Conv2d(1, 2, 3))
