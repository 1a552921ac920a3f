"""What a person looks at: metrics.jsonl, loss/eval plots, sample grids and index.html (their
paths come from the RunFolder)."""
import html
import json
import math
import os

import numpy as np
from PIL import Image

from ..atomic import atomic_write
from ..data import to_uint8
from ..evaluation.paired import measured_rows


class MetricsLog:
    """Appends one JSON object per line to the metrics log (flushed each time)."""

    def __init__(self, path):
        self.path = path

    def append(self, record):
        with open(self.path, "a") as f:
            f.write(strict_json(record) + "\n")
            f.flush()

    def truncate_after(self, step):
        """Drop records logged after `step` (a run killed after its last checkpoint)."""
        if not os.path.exists(self.path):
            return
        keep = [r for r in read_jsonl(self.path) if r.get("step", 0) <= step]
        text = "".join(strict_json(r) + "\n" for r in keep)
        atomic_write(self.path, lambda f: f.write(text.encode()), what="metrics log")


def strict_json(record: dict) -> str:
    """One line of strict JSON: a NaN or infinite number is written as null."""
    return json.dumps({k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()},
                      allow_nan=False)


def read_jsonl(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut by a kill
                    pass
    return out


def save_grid(rows, path, labels=None, scale=None):
    """rows: list of (N, 3, H, W) tensors in [-1, 1] -> one PNG, one row per tensor."""
    n, _, h, w = rows[0].shape
    grid = np.full((len(rows) * (h + 2), n * (w + 2), 3), 255, dtype=np.uint8)
    for r, row in enumerate(rows):
        for c in range(n):
            grid[r * (h + 2) + 1:r * (h + 2) + 1 + h, c * (w + 2) + 1:c * (w + 2) + 1 + w] = to_uint8(row[c])
    img = Image.fromarray(grid)
    scale = scale or max(1, 128 // h)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    img.save(path)
    return img


def plot_curves(folder, loss_panels):
    """The loss plot (one panel per LossPanel of the recipe, each loss vs step) and, if any
    evaluation was logged, the eval plot. Returns the paths written."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_jsonl(folder.metrics) if os.path.exists(folder.metrics) else []
    train = [r for r in records if r.get("type") == "train"]
    evals = [r for r in records if r.get("type") == "eval"]
    written = []
    if train:
        fig, axes = loss_figure(plt, train, loss_panels)
        written.append(_finish_figure(plt, fig, axes, folder.loss_plot))
    if evals:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        steps = [r["step"] for r in evals]
        for ax, metric in zip(axes, ("psnr", "ssim")):
            for key, label, style in ((f"{metric}_AtoB", "G(A) vs true B", "-o"),
                                      (f"{metric}_BtoA", "F(B) vs true A", "-o"),
                                      (f"{metric}_identity_AtoB", "identity baseline (A vs B)", "--")):
                if key in evals[0]:  # a one-sided recipe (CUT) has no F(B)
                    ax.plot(steps, [_number(r[key]) for r in evals], style, label=label, markersize=3)
            ax.set_title(metric.upper() + (" (dB)" if metric == "psnr" else ""))
        written.append(_finish_figure(plt, fig, axes, folder.eval_plot))
    return written


def loss_figure(plt, train, loss_panels):
    """(figure, the axes drawn): a panel per LossPanel, three columns when there are more than
    four panels, each loss vs step (a null, i.e. non-finite, value is a gap)."""
    panels = [p for p in loss_panels if any(name in train[0] for name in p.names)]
    columns = 2 if len(panels) <= 4 else 3
    rows = math.ceil(len(panels) / columns)
    fig, grid = plt.subplots(rows, columns, figsize=(5.5 * columns, 4 * rows), squeeze=False)
    cells = list(grid.flat)
    for spare in cells[len(panels):]:
        spare.remove()
    steps = [r["step"] for r in train]
    for ax, panel in zip(cells, panels):
        for name in panel.names:
            if name in train[0]:
                ax.plot(steps, [_number(r.get(name)) for r in train], label=name)
        ax.set_title(panel.title)
    return fig, cells[:len(panels)]


def write_index(folder, opt_dict, sample_caption):
    """The run page: plots, the latest evaluation, and every sample grid (newest first)."""
    samples = folder.sample_grids()
    records = read_jsonl(folder.metrics) if os.path.exists(folder.metrics) else []
    evals = [r for r in records if r.get("type") == "eval"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(opt_dict['name'])}</title>"
             "<style>body{font-family:sans-serif;margin:1em}img{image-rendering:pixelated;max-width:100%}"
             "td,th{padding:2px 8px;text-align:right}</style></head><body>",
             f"<h1>{html.escape(opt_dict['name'])}</h1>",
             f"<p>netG={html.escape(str(opt_dict['netG']))}, dataset={html.escape(str(opt_dict['dataset']))}, "
             f"crop_size={opt_dict['crop_size']}. Sample rows: {html.escape(sample_caption)}.</p>"]
    for plot in (folder.loss_plot, folder.eval_plot):
        if os.path.exists(plot):
            parts.append(f"<img src='{html.escape(os.path.relpath(plot, folder.path))}'><br>")
    if evals:
        last = evals[-1]
        parts.append(f"<h2>Evaluation at step {last['step']}</h2><table><tr><th></th><th>PSNR (dB)</th>"
                     "<th>SSIM</th></tr>")
        for label, key in measured_rows(last):
            parts.append(f"<tr><td>{label}</td><td>{last['psnr_' + key]:.2f}</td><td>{last['ssim_' + key]:.3f}</td></tr>")
        parts.append("</table>")
    parts.append("<h2>Samples</h2>")
    for f in reversed(samples):
        grid = os.path.relpath(os.path.join(folder.samples, f), folder.path)
        parts.append(f"<h3>{html.escape(f[:-4])}</h3><img src='{html.escape(grid)}'>")
    parts.append("</body></html>")
    page = "\n".join(parts).encode()
    atomic_write(folder.index_html, lambda f: f.write(page), what="run page")


def _number(value):
    """A logged value for plotting: null (a non-finite value) is a gap in the curve."""
    return float("nan") if value is None else value


def decorate_axes(axes):
    """Step axis, grid and a legend inside each panel (two columns past four lines)."""
    for ax in axes:
        ax.set_xlabel("step")
        lines = len(ax.get_lines())
        if lines:
            ax.legend(fontsize=7 if lines > 4 else 8, ncol=2 if lines > 4 else 1, loc="best", framealpha=0.7)
        ax.grid(alpha=0.3)


def _finish_figure(plt, fig, axes, path):
    """Decorate every panel; save as PNG and close. Returns the path."""
    decorate_axes(axes)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
