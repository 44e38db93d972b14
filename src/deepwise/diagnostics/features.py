"""What a CNN sees: feature maps through the depth of the network and the first layer's filters.

    maps = dw.diagnostics.feature_maps(model, x[:1])         # {"0": (1, 8, 8, 8) array, "1": ..., ...}
    fig = dw.diagnostics.plot_feature_maps(maps)             # one row per layer, one image per channel
    fig.savefig("maps.png")
    dw.diagnostics.plot_filters(model[0]).savefig("filters.png")

``feature_maps`` runs ``x`` through the model once, in eval mode and without building a graph, and
keeps a copy (a NumPy array on the host) of the output of each chosen layer, caught by forward hooks
that are removed afterwards; every module's train/eval mode is restored. The plots return
matplotlib ``Figure`` objects (not shown, not kept by pyplot: save or display them yourself).
matplotlib is an optional extra: ``pip install "deepwise[report]"``.
"""

from __future__ import annotations

import numpy as np

from deepwise import backend
from deepwise.autograd import no_grad
from deepwise.backend import Device
from deepwise.nn.module import Module
from deepwise.tensor import Tensor

__all__ = ["feature_maps", "plot_feature_maps", "plot_filters"]


def _figure_class():
    try:
        from matplotlib.figure import Figure  # noqa: PLC0415
    except ImportError:
        raise ImportError(
            'plotting needs matplotlib, an optional extra: pip install "deepwise[report]" (or pip install matplotlib)'
        ) from None
    return Figure


def _host(arr) -> np.ndarray:
    return np.array(backend.to_device(arr, Device("cpu")), copy=True)


def _first_tensor(out):
    if isinstance(out, Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for o in out:
            t = _first_tensor(o)
            if t is not None:
                return t
    return None


def feature_maps(model, x, layers=None) -> dict:
    """``{layer name: output array}`` for ``x`` run through ``model``.

    Args:
        model: a ``deepwise.nn.Module``.
        x: the input batch (a Tensor or an array; one image is ``x[:1]``), moved to the model's device.
        layers: which outputs to keep: dotted names (``"features.0"``), module objects, or layer
            classes (``nn.Conv2d``). Default: every layer without children whose output has spatial
            dimensions (3 or more dims: conv, activation and pooling outputs), or every layer
            without children if none has.

    A layer that returns several tensors (an LSTM) contributes its first. A layer called several
    times keeps its last output. The order of the dict is the order the layers ran.
    """
    if not isinstance(model, Module):
        raise TypeError(f"feature_maps: model must be a deepwise nn.Module, got {type(model).__name__}")
    named = list(model.named_modules())
    root = type(model).__name__
    names = {id(m): (n if n else root) for n, m in named}
    if layers is None:
        chosen = [m for _, m in named if next(m.children(), None) is None]
        auto = True
    else:
        auto = False
        if isinstance(layers, (str, Module, type)):
            layers = [layers]
        chosen = []
        by_name = dict(named)
        for spec in layers:
            if isinstance(spec, str):
                if spec not in by_name:
                    raise KeyError(f"feature_maps: the model has no layer {spec!r}; its layers are "
                                   f"{[n for n, _ in named if n]}")
                chosen.append(by_name[spec])
            elif isinstance(spec, Module):
                if id(spec) not in names:
                    raise ValueError(f"feature_maps: {type(spec).__name__} is not a layer of this model")
                chosen.append(spec)
            elif isinstance(spec, type):
                found = [m for _, m in named if isinstance(m, spec)]
                if not found:
                    raise ValueError(f"feature_maps: the model has no {spec.__name__} layer")
                chosen += found
            else:
                raise TypeError(f"feature_maps: layers must be names, modules or layer classes, got {spec!r}")

    if not isinstance(x, Tensor):
        x = Tensor(np.asarray(x))
    device = next((p.device for p in model.parameters()), None)
    if device is not None and x.device != device:
        x = x.to(device)

    outputs = {}

    def hook(module, args, out):
        t = _first_tensor(out)
        if t is not None:
            outputs.pop(id(module), None)  # re-insert: the dict keeps running order
            outputs[id(module)] = _host(t.array)

    handles = [m.register_forward_hook(hook) for m in chosen]
    modes = [(m, m.training) for _, m in named]
    try:
        model.eval()
        with no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            m.training = mode
    result = {names[k]: v for k, v in outputs.items()}
    if auto:
        spatial = {k: v for k, v in result.items() if v.ndim >= 3}
        if spatial:
            result = spatial
    return result


def _grid(n: int, max_cols: int):
    cols = min(n, max_cols)
    rows = (n + cols - 1) // cols
    return rows, cols


def plot_filters(conv_layer, max_filters: int = 64, channel: int | None = None, cmap: str = "gray", cols: int = 8):
    """The kernels of a convolution layer as small images, one per output channel.

    With 3 input channels each kernel is drawn in colour (RGB); otherwise ``channel`` picks an input
    channel (default: the mean over input channels). Each kernel is scaled to its own min..max.
    Returns a matplotlib Figure.
    """
    weight = getattr(conv_layer, "weight", None)
    if weight is None or weight.ndim != 4:
        got = None if weight is None else tuple(weight.shape)
        raise ValueError(f"plot_filters: expected a 2-D convolution layer (weight of shape (out, in, kh, kw)), got "
                         f"{type(conv_layer).__name__} with weight shape {got}")
    w = _host(weight.array).astype(np.float64)
    n_out, n_in = w.shape[:2]
    n = min(n_out, max_filters)
    if channel is not None and not 0 <= channel < n_in:
        raise ValueError(f"plot_filters: channel must be in 0..{n_in - 1}, got {channel}")
    rgb = n_in == 3 and channel is None
    Figure = _figure_class()
    rows, cols = _grid(n, cols)
    fig = Figure(figsize=(1.2 * cols, 1.2 * rows + 0.5))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, ax in zip(range(n), axes.flat):
        k = w[i]
        if rgb:
            img = np.transpose(k, (1, 2, 0))
            lo, hi = img.min(), img.max()
            ax.imshow((img - lo) / (hi - lo) if hi > lo else np.zeros_like(img), interpolation="nearest")
        else:
            img = k.mean(axis=0) if channel is None else k[channel]
            ax.imshow(img, cmap=cmap, interpolation="nearest")
        ax.set_title(str(i), fontsize=7)
    what = "RGB" if rgb else ("mean over input channels" if channel is None and n_in > 1 else
                              f"input channel {channel or 0}")
    fig.suptitle(f"{type(conv_layer).__name__} filters ({n} of {n_out}, {w.shape[2]}x{w.shape[3]}, {what})",
                 fontsize=9)
    return fig


def plot_feature_maps(maps, sample: int = 0, max_channels: int = 16, layers=None, cmap: str = "viridis"):
    """One row per layer, one image per channel (up to ``max_channels``) of ``sample``'s feature maps.

    ``maps``: what ``feature_maps`` returned (or one array of shape (N, C, H, W) / (N, C, L)).
    ``layers``: a subset of its keys, in the order to draw. Outputs with fewer than 3 dimensions
    (flattened, fully connected) are drawn as a single strip. Returns a matplotlib Figure.
    """
    if not isinstance(maps, dict):
        maps = {"output": np.asarray(maps)}
    keys = list(maps) if layers is None else list(layers)
    missing = [k for k in keys if k not in maps]
    if missing:
        raise KeyError(f"plot_feature_maps: no maps for {missing}; there are {list(maps)}")
    if not keys:
        raise ValueError("plot_feature_maps: no feature maps to draw")
    for k in keys:
        if not 0 <= sample < maps[k].shape[0]:
            raise ValueError(f"plot_feature_maps: sample {sample} is out of range for {k!r} of shape {maps[k].shape}")
    Figure = _figure_class()
    cols = max(min(max_channels, maps[k].shape[1]) if maps[k].ndim >= 3 else 1 for k in keys)
    fig = Figure(figsize=(1.3 * cols + 1.5, 1.4 * len(keys) + 0.4))
    axes = fig.subplots(len(keys), cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, key in enumerate(keys):
        a = np.asarray(maps[key])[sample].astype(np.float64)
        if a.ndim >= 2:
            for c in range(min(max_channels, a.shape[0])):
                img = a[c] if a.ndim == 3 else a[c].reshape(1, -1)
                axes[r, c].imshow(img, cmap=cmap, interpolation="nearest", aspect="auto" if a.ndim != 3 else None)
            shape = f"{a.shape[0]}x" + "x".join(str(d) for d in a.shape[1:])
        else:
            axes[r, 0].imshow(a.reshape(1, -1), cmap=cmap, interpolation="nearest", aspect="auto")
            shape = str(a.shape[0])
        axes[r, 0].set_title(f"{key} ({shape})", fontsize=8, loc="left")
    fig.suptitle(f"feature maps of sample {sample}", fontsize=9)
    return fig
