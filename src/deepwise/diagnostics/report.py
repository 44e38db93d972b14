"""The run report: one self-contained HTML page (plots inlined as PNG) from a run folder.

A run folder holds ``config.json``, ``history.csv`` and ``metrics.json`` (see ``deepwise.cli``); the
report draws the loss and metric curves (train vs validation), the learning rate, and whatever the
task calls for that ``metrics.json`` carries: a confusion matrix, sample images with predictions,
generated text. matplotlib is an optional extra: ``pip install "deepwise[report]"``.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os

import numpy as np

from deepwise.diagnostics.attention import plot_attention_map
from deepwise.io import atomic_write_bytes


class ReportError(RuntimeError):
    """The report cannot be built (missing files, or matplotlib not installed)."""


def _matplotlib():
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        raise ReportError(
            'reports need matplotlib, an optional extra: pip install "deepwise[report]"'
        ) from None
    return plt


def read_history(path) -> dict:
    """history.csv -> {column: [floats]} (empty cells become NaN, drawn as gaps)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    cols = {}
    for row in rows:
        for k, v in row.items():
            cols.setdefault(k, []).append(float(v) if v not in ("", None) else float("nan"))
    return cols


def _png(fig, plt) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _curves(history, plt):
    """One plot per quantity: train and validation side by side."""
    # History counts epochs from 0 (as Keras does); people count from 1
    epochs = [int(e) + 1 for e in history["epoch"]] if "epoch" in history else \
        list(range(1, len(next(iter(history.values()), [])) + 1))
    names = [k for k in history if k not in ("epoch", "lr") and not k.startswith("val_") and "/" not in k]
    figures = []
    for name in names:
        fig, ax = plt.subplots(figsize=(5.5, 3.4))
        ax.plot(epochs, history[name], marker="o", ms=3, label=f"train {name}")
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], marker="o", ms=3, label=f"validation {name}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_title(f"{name}: train vs validation")
        figures.append((f"{name}", _png(fig, plt)))
    # per-layer series ("grad_norm/0.weight", ...) from GradientMonitor: one plot per quantity

    groups = {}
    for k in history:
        if "/" in k and not k.startswith("val_"):
            groups.setdefault(k.split("/", 1)[0], []).append(k)
    for quantity, keys in groups.items():
        fig, ax = plt.subplots(figsize=(5.5, 3.4))
        for k in keys:
            ax.plot(epochs, history[k], marker="o", ms=2, label=k.split("/", 1)[1])
        values = np.asarray([history[k] for k in keys], dtype=float)
        if np.all(values[np.isfinite(values)] > 0):  # zeros (frozen or dead layers) cannot go on a log axis
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(quantity)
        ax.grid(alpha=0.3)
        if len(keys) <= 12:
            ax.legend(fontsize=6)
        ax.set_title(f"{quantity} per layer")
        figures.append((quantity, _png(fig, plt)))
    if "lr" in history and any(v == v for v in history["lr"]):
        fig, ax = plt.subplots(figsize=(5.5, 3.0))
        ax.plot(epochs, history["lr"], marker="o", ms=3, color="tab:green")
        ax.set_xlabel("epoch")
        ax.set_ylabel("learning rate")
        ax.grid(alpha=0.3)
        ax.set_title("learning rate")
        figures.append(("learning rate", _png(fig, plt)))
    return figures


def _confusion(matrix, class_names, plt):
    m = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    im = ax.imshow(m, cmap="Blues")
    n = m.shape[0]
    labels = class_names or [str(i) for i in range(n)]
    ax.set_xticks(range(n), labels)
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            if m[i, j]:
                ax.text(j, i, str(int(m[i, j])), ha="center", va="center", fontsize=7,
                        color="white" if m[i, j] > m.max() / 2 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title("confusion matrix (test)")
    return _png(fig, plt)


def _samples(samples, plt):
    n = len(samples)
    cols = min(n, 8)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, s in zip(axes.flat, samples):
        img = np.asarray(s["image"], dtype=float)
        if img.ndim == 3:
            img = img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))
        ax.imshow(img, cmap="gray_r" if img.ndim == 2 else None)
        ok = s.get("label") == s.get("pred")
        ax.set_title(f"{s.get('pred')} ({s.get('label')})", fontsize=8, color="black" if ok else "red")
    fig.suptitle("test samples: predicted (true); red = wrong", fontsize=9)
    return _png(fig, plt)


def _image_grid(grid, plt):
    """``{"title", "images": [2-D lists in [0, 1]], "captions": [...], "ncols"}`` as one figure."""
    images = grid["images"]
    captions = list(grid.get("captions") or []) + [""] * len(images)
    cols = max(1, min(int(grid.get("ncols", 8)), len(images)))
    rows = (len(images) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.1 * cols, 1.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, cap in zip(axes.flat, images, captions):
        ax.imshow(np.asarray(img, dtype=float), cmap="gray", vmin=0, vmax=1)
        if cap:
            ax.set_title(str(cap), fontsize=7)
    return _png(fig, plt)


def _table(d) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in d.items()
    )
    return f"<table>{rows}</table>"


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def build_report(run_dir, out_path=None) -> str:
    """Write ``report.html`` in ``run_dir`` (or ``out_path``) and return its path."""
    cfg_path = os.path.join(run_dir, "config.json")
    hist_path = os.path.join(run_dir, "history.csv")
    if not os.path.isdir(run_dir):
        raise ReportError(f"no run folder at {run_dir}")
    if not os.path.exists(hist_path):
        raise ReportError(f"{run_dir} has no history.csv: is it a deepwise run folder?")
    plt = _matplotlib()
    config = json.load(open(cfg_path)) if os.path.exists(cfg_path) else {}
    metrics_path = os.path.join(run_dir, "metrics.json")
    metrics = json.load(open(metrics_path)) if os.path.exists(metrics_path) else {}
    history = read_history(hist_path)

    parts = []
    title = f"deepwise run: {config.get('recipe', os.path.basename(os.path.abspath(run_dir)))}"
    parts.append(f"<h1>{html.escape(title)}</h1>")
    scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}
    if scalars:
        parts.append("<h2>Final test metrics</h2>" + _table(scalars))
    if "diagnosis" in metrics:
        parts.append("<h2>What the diagnostics noticed</h2>")
        for item in metrics["diagnosis"]:
            parts.append(f"<p class='diag'>{html.escape(str(item))}</p>")
    parts.append("<h2>Training curves</h2>")
    for name, png in _curves(history, plt):
        parts.append(f"<figure><img alt='{html.escape(name)}' src='data:image/png;base64,{png}'></figure>")
    if "confusion_matrix" in metrics:
        png = _confusion(metrics["confusion_matrix"], metrics.get("class_names"), plt)
        parts.append("<h2>Confusion matrix</h2>"
                     f"<figure><img alt='confusion matrix' src='data:image/png;base64,{png}'></figure>")
    if metrics.get("samples"):
        png = _samples(metrics["samples"], plt)
        parts.append("<h2>Samples</h2>"
                     f"<figure><img alt='samples' src='data:image/png;base64,{png}'></figure>")
    for grid in metrics.get("image_grids", []):
        png = _image_grid(grid, plt)
        parts.append(f"<h2>{html.escape(grid.get('title', 'images'))}</h2>"
                     f"<figure><img alt='{html.escape(grid.get('title', 'images'))}' "
                     f"src='data:image/png;base64,{png}'></figure>")
    if metrics.get("generated_text"):
        parts.append("<h2>Generated text</h2><pre>" + html.escape(metrics["generated_text"]) + "</pre>")
    if metrics.get("translations"):
        rows = "".join(f"<tr><td>{html.escape(t['source'])}</td><td>{html.escape(t['reference'])}</td>"
                       f"<td>{html.escape(t['greedy'])}</td><td>{html.escape(t.get('beam', ''))}</td></tr>"
                       for t in metrics["translations"])
        parts.append("<h2>Test translations</h2><table><tr><th>source</th><th>reference</th><th>greedy</th>"
                     f"<th>beam search</th></tr>{rows}</table>")
    if metrics.get("attention_maps"):
        parts.append("<h2>What attention looks at</h2>")
        if metrics.get("attention_sample"):
            parts.append("<pre>" + html.escape(metrics["attention_sample"]) + "</pre>")
        for line in metrics.get("attention_text", []):
            parts.append(f"<p class='diag'>{html.escape(str(line))}</p>")
        for entry in metrics["attention_maps"]:
            png = _png(plot_attention_map(entry, plt), plt)
            parts.append(f"<figure><img alt='{html.escape(entry.get('title', 'attention'))}' "
                         f"src='data:image/png;base64,{png}'></figure>")
    if config:
        parts.append("<h2>Configuration</h2>" + _table(config))
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:3px 10px;text-align:left}"
        "figure{display:inline-block;margin:6px}.diag{background:#fff6e0;padding:8px;border-left:4px solid #e6a700}"
        "</style></head><body>" + "\n".join(parts) + "</body></html>"
    )
    out_path = out_path or os.path.join(run_dir, "report.html")

    atomic_write_bytes(out_path, page.encode("utf-8"))
    return out_path
