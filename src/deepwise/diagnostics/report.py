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
from deepwise.diagnostics.gradients import DEAD_THRESHOLD, SATURATION_THRESHOLD
from deepwise.io import atomic_write_bytes
from deepwise.nn.summary import summary


class ReportError(RuntimeError):
    """The report cannot be built (missing files, or matplotlib not installed)."""


def _matplotlib():
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        raise ReportError(
            'reports need matplotlib, an optional extra: pip install "deepwise[report]" '
            '(from a source checkout: pip install ".[report]")'
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


# what the numbers mean, by name: (explanation, unit); matched on the name without its test_/val_ prefix
_MEANINGS = {
    "loss": ("the training objective on held-out data (lower is better)", "per sample"),
    "accuracy": ("share of samples whose predicted class is the true one", "fraction, 1 = all"),
    "mae": ("mean absolute error of the standardised target", "standard units"),
    "rmse_ppm": ("root mean squared error of the forecast", "ppm CO2"),
    "mae_ppm": ("mean absolute error of the forecast", "ppm CO2"),
    "rmse_vs_naive": ("forecast RMSE divided by that of repeating the last value (below 1 beats it)", "ratio"),
    "elbo_nats": ("evidence lower bound per image (higher is better)", "nats"),
    "reconstruction_nll_nats": ("negative log-likelihood of the reconstruction per image", "nats"),
    "kl_nats": ("KL divergence of the codes from the prior per image", "nats"),
    "reconstruction_mse": ("mean squared error per pixel of the reconstruction", "pixel values in [0, 1]"),
    "psnr_denoised_db": ("peak signal-to-noise ratio of the denoised images against the clean ones", "dB"),
    "psnr_noisy_db": ("the same for the noisy inputs (the baseline the denoiser must beat)", "dB"),
    "reconstruction_mse_clean_input": ("mean squared error per pixel when the input is the clean image",
                                       "pixel values in [0, 1]"),
    "bits_per_char": ("the loss in bits per character (lower is better)", "bits"),
    "longer_strings_accuracy": ("accuracy on strings longer than any seen in training", "fraction"),
    "confident_share": ("share of images a digit classifier recognises with more than 90% confidence", "fraction"),
    "distinct_classes": ("how many different digits appear among the confident ones", "of 10"),
    "class_entropy_bits": ("entropy of the predicted digits (3.32 = all ten used equally)", "bits"),
    "mean_confidence": ("the classifier's mean top probability", "fraction"),
    "pixel_mean": ("mean pixel value", "[0, 1]"),
    "pixel_std": ("standard deviation of the pixel values", "[0, 1]"),
    "d_loss": ("discriminator loss (real vs generated)", "nats"),
    "g_loss": ("generator loss (non-saturating)", "nats"),
    "d_real": ("discriminator's mean probability that real images are real", "fraction"),
    "d_fake": ("discriminator's mean probability that generated images are real", "fraction"),
    "perplexity": ("exp of the loss per character: the number of equally likely choices", "characters"),
}


def _meaning(name: str) -> str:
    key = name
    for prefix in ("test_", "val_", "naive_", "sample_", "real_", "knn5_"):
        if key.startswith(prefix):
            key = key[len(prefix):]
    text = _MEANINGS.get(key)
    if text is None and key.startswith("pca") and key.endswith("_mse"):
        text = (f"mean squared error per pixel of PCA with {key[3:-4]} components (the linear baseline)",
                "pixel values in [0, 1]")
    if text is None and key.startswith("accuracy"):
        text = ("share of test samples a 5-nearest-neighbour vote labels correctly", "fraction")
    if text is None:
        return ""
    what, unit = text
    where = {"naive_": "naive last-value forecast: ", "real_": "real test images: ", "sample_": "generated images: ",
             "knn5_": "5-nearest neighbours on " + ("the codes" if "embedding" in name else "raw pixels") + ": "}
    lead = next((v for k, v in where.items() if name.startswith(k)), "")
    return f"{lead}{what} [{unit}]"


def _epochs(history):
    # History counts epochs from 0 (as Keras does); people count from 1
    if "epoch" in history:
        return [int(e) + 1 for e in history["epoch"]]
    return list(range(1, len(next(iter(history.values()), [])) + 1))


def best_epoch(history):
    """The epoch (1-based, as plotted) with the lowest val_loss, or None without one. A GAN (its
    history has d_loss and g_loss) has none: the sum of two adversaries' losses says nothing of quality."""
    val = history.get("val_loss")
    if not val or ("d_loss" in history and "g_loss" in history):
        return None
    finite = [(v, i) for i, v in enumerate(val) if v == v]
    return _epochs(history)[min(finite)[1]] if finite else None


def _epoch_axis(ax, plt):
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))  # epochs are whole numbers


def _mark_best(ax, best):
    if best is not None:
        ax.axvline(best, color="0.4", ls="--", lw=1, label=f"best epoch ({best})")


def _legend(ax, n):
    """A legend that never hides the curves: inside for a few entries, below the plot for many."""
    if n <= 4:
        ax.legend(fontsize=7)
    else:
        ax.legend(fontsize=6, ncol=min(4, (n + 5) // 6), loc="upper center", bbox_to_anchor=(0.5, -0.22))


def _label(key, layer_types):
    """``8.weight`` -> ``8.weight (Linear)``; ``3`` -> ``3 (ReLU)``."""
    module = key.rsplit(".", 1)[0] if key not in layer_types and "." in key else key
    kind = layer_types.get(module)
    return f"{key} ({kind})" if kind else key


_THRESHOLDS = {"dead_relu": DEAD_THRESHOLD, "saturated": SATURATION_THRESHOLD}
_SIZE = (4.6, 2.9)


def _curves(history, plt, layer_types=None):
    """One plot per quantity: training (and validation, when there is one) side by side; one plot per
    per-layer quantity; the learning rate when it changes. The best epoch is marked on each."""
    layer_types = layer_types or {}
    epochs = _epochs(history)
    best = best_epoch(history)
    names = [k for k in history if k not in ("epoch", "lr") and not k.startswith("val_") and "/" not in k]
    figures = []
    for name in names:
        fig, ax = plt.subplots(figsize=_SIZE)
        has_val = f"val_{name}" in history
        ax.plot(epochs, history[name], marker="o", ms=3, label=f"training {name}")
        if has_val:
            ax.plot(epochs, history[f"val_{name}"], marker="o", ms=3, label=f"validation {name}")
        _mark_best(ax, best)
        _epoch_axis(ax, plt)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        _legend(ax, 3)
        ax.set_title(f"{name}: training vs validation" if has_val else f"{name} (training)")
        figures.append((f"{name}", _png(fig, plt)))
    # per-layer series ("grad_norm/0.weight", "dead_relu/1", ...) from GradientMonitor: one plot per quantity
    groups = {}
    for k in history:
        if "/" in k and not k.startswith("val_"):
            groups.setdefault(k.split("/", 1)[0], []).append(k)
    for quantity, keys in groups.items():
        fig, ax = plt.subplots(figsize=_SIZE)
        if len(keys) > 10:  # ten colours repeat: twenty keep the curves apart
            ax.set_prop_cycle(color=plt.cm.tab20.colors)
        for k in keys:
            ax.plot(epochs, history[k], marker="o", ms=2, label=_label(k.split("/", 1)[1], layer_types))
        values = np.asarray([history[k] for k in keys], dtype=float)
        if quantity in _THRESHOLDS:  # the line the findings are judged against
            ax.axhline(_THRESHOLDS[quantity], color="tab:red", ls=":", lw=1,
                       label=f"flagged from {_THRESHOLDS[quantity]:.0%}")
            ax.set_ylim(0, 1)
            n = len(keys) + 1
        elif np.all(values[np.isfinite(values)] > 0):  # zeros (frozen or dead layers) cannot go on a log axis
            ax.set_yscale("log")
            n = len(keys)
        else:
            n = len(keys)
        _mark_best(ax, best)
        _epoch_axis(ax, plt)
        ax.set_ylabel(quantity)
        ax.grid(alpha=0.3)
        _legend(ax, n + (best is not None))
        ax.set_title(f"{quantity} per layer")
        figures.append((quantity, _png(fig, plt)))
    lrs = [v for v in history.get("lr", []) if v == v]
    if lrs and max(lrs) > min(lrs):  # a constant learning rate is said in words, not drawn
        fig, ax = plt.subplots(figsize=_SIZE)
        ax.plot(epochs, history["lr"], marker="o", ms=3, color="tab:green", label="learning rate")
        if min(lrs) > 0:
            ax.set_yscale("log")
        _mark_best(ax, best)
        _epoch_axis(ax, plt)
        ax.set_ylabel("learning rate")
        ax.grid(alpha=0.3)
        _legend(ax, 2)
        ax.set_title("learning rate")
        figures.append(("learning rate", _png(fig, plt)))
    return figures


def _forecast(rows, plt):
    """Forecast against the actual series (and the naive last-value forecast), month by month."""
    fig, ax = plt.subplots(figsize=(9.2, 3.2))
    x = np.arange(len(rows))
    ax.plot(x, [r["true"] for r in rows], color="black", lw=1.5, label="actual")
    ax.plot(x, [r["forecast"] for r in rows], color="tab:blue", lw=1.2, label="forecast (model)")
    if all("naive" in r for r in rows):
        ax.plot(x, [r["naive"] for r in rows], color="tab:orange", lw=1, ls="--", label="naive: last month's value")
    step = max(1, len(rows) // 8)
    ax.set_xticks(x[::step], [r.get("month", str(i)) for i, r in zip(x[::step], rows[::step])], fontsize=7)
    ax.set_xlabel("month (test period)")
    ax.set_ylabel("value (ppm CO2)" if all("month" in r for r in rows) else "value")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("one-month-ahead forecast vs actual (test)")
    return _png(fig, plt)


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


def _metrics_table(d) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td class='num'>{html.escape(_fmt(v))}</td>"
        f"<td class='what'>{html.escape(_meaning(str(k)))}</td></tr>" for k, v in d.items()
    )
    return f"<table><tr><th>metric</th><th>value</th><th>what it means [unit]</th></tr>{rows}</table>"


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def model_overview(model, inputs=None) -> dict:
    """What a report shows of the model, for a run's metrics.json: ``{"model": {"summary": text,
    "layers": {module name: class name}}}``. The summary is ``dw.summary`` for the shape of one
    sample of ``inputs`` (a batch) when the model runs on such a float sample, else the module tree."""
    text = None
    shape = getattr(inputs, "shape", None)
    dtype = getattr(inputs, "dtype", None)
    if shape is not None and len(shape) >= 2 and getattr(dtype, "kind", "f") == "f":
        try:
            text = str(summary(model, tuple(int(d) for d in shape[1:])))
        except Exception:
            text = None
    return {"model": {"summary": text or repr(model),
                      "layers": {name: type(m).__name__ for name, m in model.named_modules() if name}}}


def _img(alt, png) -> str:
    return f"<figure><img alt='{html.escape(alt)}' src='data:image/png;base64,{png}'></figure>"


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1000px;margin:1.5em auto;padding:0 12px;color:#222;"
    "line-height:1.45}"
    "table{border-collapse:collapse;max-width:100%}th,td{border:1px solid #ccc;padding:3px 10px;text-align:left;"
    "vertical-align:top}td.num{font-variant-numeric:tabular-nums;white-space:nowrap}td.what{color:#555}"
    ".plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(440px,1fr));gap:8px}"
    "figure{margin:4px}img{max-width:100%;height:auto}pre{overflow-x:auto;background:#f6f6f6;padding:8px;"
    "font-size:12px}.diag{background:#fff6e0;padding:8px;border-left:4px solid #e6a700;overflow-wrap:anywhere}"
    ".ok{background:#eef8ee;border-left-color:#3a3}"
    "@media (max-width:520px){.plots{grid-template-columns:1fr}}"
)


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
    model = metrics.get("model") or {}
    layer_types = model.get("layers") or {}

    parts = []
    title = f"deepwise run: {config.get('recipe', os.path.basename(os.path.abspath(run_dir)))}"
    parts.append(f"<h1>{html.escape(title)}</h1>")
    best = best_epoch(history)
    n_epochs = len(_epochs(history))
    if best is not None:
        parts.append(f"<p>{n_epochs} epochs; the best epoch (lowest val_loss) is {best}, marked on the plots "
                     "with a dashed line.</p>")
    scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
    if scalars:
        parts.append("<h2>Final test metrics</h2>" + _metrics_table(scalars))
    parts.append("<h2>What the diagnostics noticed</h2>")
    if "diagnosis" in metrics:
        for item in metrics["diagnosis"]:
            text = str(item)
            ok = "found no problem" in text or "found no overfitting" in text or text.startswith("No problem")
            parts.append(f"<p class='diag{' ok' if ok else ''}'>{html.escape(text)}</p>")
    else:
        parts.append("<p class='diag'>No GradientMonitor or OverfittingAdvisor watched this run: a GAN's losses "
                     "do not say which epoch is best, so it keeps its last weights and is judged by its samples "
                     "(the sample scores above and the images below). " + html.escape(_gan_note(history)) + "</p>")
    parts.append("<h2>Training curves</h2><div class='plots'>")
    for name, png in _curves(history, plt, layer_types):
        parts.append(_img(name, png))
    parts.append("</div>")
    lrs = [v for v in history.get("lr", []) if v == v]
    if lrs and max(lrs) == min(lrs):
        parts.append(f"<p>The learning rate was {lrs[0]:g} throughout (not plotted).</p>")
    if metrics.get("forecast"):
        parts.append("<h2>Forecast vs actual</h2>" + _img("forecast vs actual", _forecast(metrics["forecast"], plt)))
    if "confusion_matrix" in metrics:
        png = _confusion(metrics["confusion_matrix"], metrics.get("class_names"), plt)
        parts.append("<h2>Confusion matrix</h2>" + _img("confusion matrix", png))
    if metrics.get("samples"):
        parts.append("<h2>Samples</h2>" + _img("samples", _samples(metrics["samples"], plt)))
    for grid in metrics.get("image_grids", []):
        png = _image_grid(grid, plt)
        parts.append(f"<h2>{html.escape(grid.get('title', 'images'))}</h2>" + _img(grid.get("title", "images"), png))
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
            parts.append(_img(entry.get("title", "attention"), png))
    if model.get("summary"):
        parts.append("<h2>The model</h2><pre>" + html.escape(model["summary"]) + "</pre>")
    if config:
        parts.append("<h2>Configuration</h2>" + _table(config))
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>" + "\n".join(parts)
        + "</body></html>"
    )
    out_path = out_path or os.path.join(run_dir, "report.html")

    atomic_write_bytes(out_path, page.encode("utf-8"))
    return out_path


def _gan_note(history) -> str:
    """What a GAN's last epochs say about the balance between its two networks."""
    real, fake = history.get("d_real"), history.get("d_fake")
    if not real or not fake:
        return ""
    r, f = real[-1], fake[-1]
    if r != r or f != f:
        return ""
    if r - f > 0.6:
        verdict = "the discriminator is winning clearly: the generator's gradient may be too weak to learn from"
    elif abs(r - f) < 0.2:
        verdict = "the two networks are balanced, as they should be"
    else:
        verdict = "the discriminator is ahead, within the usual range"
    return (f"At the last epoch the discriminator gave real images {r:.2f} and generated ones {f:.2f} "
            f"(probability of being real): {verdict}.")
