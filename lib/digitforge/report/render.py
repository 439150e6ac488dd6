"""Model reports: PNG charts and one HTML page per model, and a page comparing two models.

Pure functions of plain inputs (lists, numpy arrays, a state_dict): no database, no Spark. The figures
are drawn on matplotlib Figure objects (the Agg renderer, no pyplot and no global state), so they
render anywhere, headless and in threads. lib/digitforge/report_data.py gathers the inputs.
"""
from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

NUM_CLASSES = 10
DPI = 100
CHARTS = {"curves": "Training curves", "confusion": "Confusion matrix", "filters": "First-layer filters",
          "misclassified": "Misclassified test images", "balance": "Label balance"}


@dataclass
class ReportInputs:
    """What one model's report shows. `model` is the registry's record of it (id, dataset, architecture,
    test_accuracy, test_loss, config, metrics with confusion_matrix / per_class / history, lineage)."""
    model: dict
    class_names: list[str]
    state_dict: dict | None = None             # the weights (torch tensors or numpy arrays)
    test_images: np.ndarray | None = None      # (N, 28, 28) uint8, the test rows the model was run on
    test_labels: np.ndarray | None = None      # (N,)
    test_predictions: np.ndarray | None = None  # (N,)
    test_confidences: np.ndarray | None = None  # (N,) probability of the predicted class, optional
    label_counts: dict[str, list[int]] = field(default_factory=dict)  # split -> 10 counts
    test_source: str = ""                      # where the test rows came from (shown under the grid)
    misclassified_limit: int = 40              # images in the misclassified grid


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _array(t) -> np.ndarray:
    if hasattr(t, "detach"):  # a torch tensor (without importing torch here)
        t = t.detach().cpu().float().numpy()
    return np.asarray(t)


# ------------------------------------------------------------------------------------------- charts

def training_curves(history: list[dict], path: Path, title: str = "") -> Path:
    """Train and test loss (left) and test accuracy (right) per epoch."""
    fig = Figure(figsize=(9, 3.4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [h["epoch"] for h in history]
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train loss")
    ax_loss.plot(epochs, [h["test_loss"] for h in history], "s-", label="test loss")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_loss.legend()
    acc = [100 * h["test_accuracy"] for h in history]
    ax_acc.plot(epochs, acc, "o-", color="tab:green")
    for e, a in zip(epochs, acc):
        ax_acc.annotate(f"{a:.2f}", (e, a), textcoords="offset points", xytext=(0, 5), ha="center", fontsize=7)
    ax_acc.set(xlabel="epoch", ylabel="%", title="test accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if epochs:
            ax.set_xticks(epochs if len(epochs) <= 20 else epochs[::max(1, len(epochs) // 10)])
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def confusion_heatmap(confusion, class_names: list[str], path: Path, title: str = "") -> Path:
    """Rows: true class, columns: predicted. Colour: share of the true class (so rare classes show too);
    numbers: counts."""
    cm = np.asarray(confusion, dtype=np.int64)
    share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig = Figure(figsize=(6.4, 5.6))
    ax = fig.subplots()
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    n = len(cm)
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else ("tab:red" if i != j else "black"))
    ax.set_xticks(range(n), [str(c) for c in class_names[:n]], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), [str(c) for c in class_names[:n]], fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix (test)")
    return _save(fig, path)


def _natural(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def first_conv_weight(state_dict: dict) -> tuple[str, np.ndarray] | None:
    """(name, (out, in, kh, kw) array) of the first convolution: the 4-D weight that reads the
    1-channel image (the first such by layer name), or None (an MLP). Not simply the first 4-D
    tensor: a state_dict read back from safetensors is not in layer order."""
    convs = sorted((name for name, t in state_dict.items() if name.endswith("weight") and len(getattr(t, "shape", ())) == 4),
                   key=lambda n: (state_dict[n].shape[1] != 1, _natural(n)))
    return (convs[0], _array(state_dict[convs[0]])) if convs else None


def conv_filters(state_dict: dict, path: Path, title: str = "") -> Path | None:
    """The first convolution layer's filters, each scaled to its own range, in a grid (as PuzzleLib's
    showFilters). None when the model has no convolution (the mlp)."""
    found = first_conv_weight(state_dict)
    if found is None:
        return None
    name, w = found
    w = w.mean(axis=1)  # over input channels (1 for grayscale)
    n = len(w)
    cols = min(n, 8 if n <= 32 else 16)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(cols * 0.9, rows * 0.9 + 0.5))
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for k, ax in enumerate(axes):
        ax.axis("off")
        if k < n:
            f = w[k]
            lo, hi = f.min(), f.max()
            ax.imshow((f - lo) / (hi - lo) if hi > lo else np.zeros_like(f), cmap="gray", vmin=0, vmax=1,
                      interpolation="nearest")
    fig.suptitle(title or f"{name}: {n} filters {w.shape[1]}x{w.shape[2]}", fontsize=9)
    return _save(fig, path)


def misclassified_grid(images, labels, predictions, class_names: list[str], path: Path,
                       confidences=None, limit: int = 40) -> tuple[Path, int]:
    """Up to `limit` misclassified images (the most confidently wrong first when confidences are
    given) titled `true -> predicted`. Returns (path, how many were wrong in all)."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    wrong = np.flatnonzero(labels != predictions)
    if confidences is not None:
        wrong = wrong[np.argsort(-np.asarray(confidences)[wrong], kind="stable")]
    shown = wrong[:limit]
    cols = 8
    rows = max(1, math.ceil(len(shown) / cols))
    fig = Figure(figsize=(cols * 1.5, rows * 1.5 + 0.4))
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for k, ax in enumerate(axes):
        ax.axis("off")
        if k < len(shown):
            i = shown[k]
            ax.imshow(np.asarray(images[i]).reshape(28, 28), cmap="gray_r", vmin=0, vmax=255)
            text = f"{class_names[labels[i]]}\n→ {class_names[predictions[i]]}"
            if confidences is not None:
                text += f" ({float(np.asarray(confidences)[i]):.2f})"
            ax.set_title(text, fontsize=7, color="tab:red")
    if not len(shown):
        axes[0].text(0, 0.5, "no misclassified images", fontsize=10)
    fig.suptitle(f"{len(wrong)} of {len(labels)} test images misclassified"
                 + (f"; the {len(shown)} shown: true → predicted" if len(shown) else ""), fontsize=9)
    return _save(fig, path), len(wrong)


def label_balance(counts: dict[str, list[int]], class_names: list[str], path: Path, title: str = "") -> Path:
    """Images per class of each split (bars side by side), with each class's share of its split."""
    fig = Figure(figsize=(9, 3.4))
    ax = fig.subplots()
    splits = list(counts)
    width = 0.8 / max(len(splits), 1)
    x = np.arange(len(class_names))
    for s, split in enumerate(splits):
        c = np.asarray(counts[split], dtype=float)
        bars = ax.bar(x + (s - (len(splits) - 1) / 2) * width, c, width, label=f"{split} ({int(c.sum())})")
        if len(splits) == 1 or s == 0:
            for b, v in zip(bars, c):
                ax.annotate(f"{100 * v / max(c.sum(), 1):.1f}%", (b.get_x() + b.get_width() / 2, v),
                            textcoords="offset points", xytext=(0, 2), ha="center", fontsize=6)
    ax.set_xticks(x, [str(c) for c in class_names], rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="images", title=title or "label balance")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def per_class_bars(models: list[tuple[str, list[float]]], class_names: list[str], path: Path,
                   metric: str = "F1") -> Path:
    """One metric per class for several models, grouped by class index."""
    fig = Figure(figsize=(9, 3.4))
    ax = fig.subplots()
    width = 0.8 / len(models)
    x = np.arange(len(class_names))
    for k, (label, values) in enumerate(models):
        ax.bar(x + (k - (len(models) - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(x, class_names, rotation=30, ha="right", fontsize=8)
    lo = min(min(v) for _, v in models)
    ax.set(ylabel=metric, ylim=(max(0.0, lo - 0.05), 1.01), title=f"per-class {metric}")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=len(models))
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


# ------------------------------------------------------------------------------------------ metrics

def class_table(metrics: dict) -> list[dict]:
    """Per class: precision, recall, F1 and support, from the stored per_class metrics or the
    confusion matrix."""
    cm = np.asarray(metrics.get("confusion_matrix") or np.zeros((NUM_CLASSES, NUM_CLASSES)), dtype=float)
    pc = metrics.get("per_class") or {}
    tp = np.diag(cm)
    precision = pc.get("precision") or list(np.divide(tp, cm.sum(0), out=np.zeros_like(tp), where=cm.sum(0) > 0))
    recall = pc.get("recall") or list(np.divide(tp, cm.sum(1), out=np.zeros_like(tp), where=cm.sum(1) > 0))
    f1 = pc.get("f1") or [2 * p * r / (p + r) if p + r else 0.0 for p, r in zip(precision, recall)]
    return [{"class": i, "precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
             "support": int(cm[i].sum())} for i in range(len(cm))]


def headline(model: dict) -> dict:
    m = model.get("metrics") or {}
    history = m.get("history") or []
    return {"test accuracy": model.get("test_accuracy"), "test loss": model.get("test_loss"),
            "test rows": m.get("test_rows"), "epochs": len(history) or None,
            "train seconds": model.get("train_seconds")}


# --------------------------------------------------------------------------------------------- html

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}.big{font-size:1.6em;font-weight:600}
.cards{display:flex;gap:1.2em;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em}
.pos{color:#17813b}.neg{color:#c0392b}.note{color:#777;font-style:italic}img{max-width:100%}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:1.5em}pre{background:#f7f7f7;padding:1em;overflow:auto}"""


def _e(x) -> str:
    return html.escape(str(x))


def _fmt(v, pct=False, seconds=False) -> str:
    if v is None:
        return "–"
    if seconds:
        return f"{float(v):.1f} s"
    if isinstance(v, float):
        return f"{100 * v:.2f}%" if pct else f"{v:.4f}"
    return _e(v)


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>{STYLE}</style></head><body>{body}</body></html>\n")


def _write(path: Path, text: str) -> Path:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # a reader never sees half a page
    return path


def render_charts(inp: ReportInputs, out_dir: Path, prefix: str = "") -> tuple[dict[str, str], dict[str, str]]:
    """Draw every chart this input allows. Returns ({chart: file name}, {chart: why it is missing})."""
    out_dir = Path(out_dir)
    m = inp.model.get("metrics") or {}
    label = f"{inp.model.get('architecture', '?')} on {inp.model.get('dataset', '?')}"
    files, notes = {}, {}

    def name(chart):
        return f"{prefix}{chart}.png"

    if m.get("history"):
        training_curves(m["history"], out_dir / name("curves"), label)
        files["curves"] = name("curves")
    else:
        notes["curves"] = "no per-epoch history stored with this model"
    if m.get("confusion_matrix"):
        confusion_heatmap(m["confusion_matrix"], inp.class_names, out_dir / name("confusion"), f"confusion matrix: {label}")
        files["confusion"] = name("confusion")
    else:
        notes["confusion"] = "no confusion matrix stored with this model"
    if inp.state_dict is None:
        notes["filters"] = "weights not loaded"
    elif conv_filters(inp.state_dict, out_dir / name("filters")) is None:
        notes["filters"] = f"{inp.model.get('architecture', 'this model')} has no convolution layer (fully connected only)"
    else:
        files["filters"] = name("filters")
    if inp.test_predictions is not None:
        _, n_wrong = misclassified_grid(inp.test_images, inp.test_labels, inp.test_predictions, inp.class_names,
                                        out_dir / name("misclassified"), inp.test_confidences,
                                        inp.misclassified_limit)
        files["misclassified"] = name("misclassified")
        if inp.test_source:
            notes["misclassified"] = f"the model run on {inp.test_source}"
    else:
        notes["misclassified"] = "no test rows available to run the model on"
    if inp.label_counts:
        label_balance(inp.label_counts, inp.class_names, out_dir / name("balance"), f"label balance: {inp.model.get('dataset', '')}")
        files["balance"] = name("balance")
    else:
        notes["balance"] = "no label counts available"
    return files, notes


def _class_rows(inp: ReportInputs) -> str:
    rows = []
    for r in class_table(inp.model.get("metrics") or {}):
        name = inp.class_names[r["class"]] if r["class"] < len(inp.class_names) else r["class"]
        rows.append(f"<tr><td>{r['class']}</td><td class=l>{_e(name)}</td><td>{r['precision']:.4f}</td>"
                    f"<td>{r['recall']:.4f}</td><td>{r['f1']:.4f}</td><td>{r['support']}</td></tr>")
    return ("<table><tr><th>#</th><th class=l>class</th><th>precision</th><th>recall</th><th>F1</th>"
            "<th>support</th></tr>" + "".join(rows) + "</table>")


def _chart_html(chart: str, files: dict, notes: dict) -> str:
    if chart in files:
        caption = f"<p class=note>{_e(notes[chart])}</p>" if chart in notes else ""
        return f"<img src='{_e(files[chart])}' alt='{_e(CHARTS[chart])}'>{caption}"
    return f"<p class=note>{_e(notes.get(chart, 'not available'))}</p>"


def _model_heading(model: dict) -> str:
    return f"{_e(model.get('architecture', '?'))} on {_e(model.get('dataset', '?'))} · model {_e(model.get('id', '?'))}"


def write_report(inp: ReportInputs, out_dir: str | Path) -> Path:
    """Charts + index.html for one model in out_dir. Returns the page's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files, notes = render_charts(inp, out_dir)
    model = inp.model
    cards = "".join(f"<div class=card>{_e(k)}<div class=big>{_fmt(v, k == 'test accuracy', k == 'train seconds')}</div></div>"
                    for k, v in headline(model).items() if v is not None)
    train_cfg = (model.get("config") or {}).get("train", {})
    cfg_rows = "".join(f"<tr><td class=l>{_e(k)}</td><td class=l>{_e(v)}</td></tr>" for k, v in train_cfg.items())
    sections = "".join(f"<h2>{_e(title)}</h2>{_chart_html(chart, files, notes)}" for chart, title in CHARTS.items())
    body = (f"<h1>{_model_heading(model)}</h1>"
            f"<p>registered {_e(model.get('upload_date') or '?')}"
            + (f" · aliases: {_e(', '.join(model['aliases']))}" if model.get("aliases") else "")
            + (f" · {_e(model['comments'])}" if model.get("comments") else "") + "</p>"
            f"<div class=cards>{cards}</div>"
            f"<h2>Per-class metrics (test)</h2>{_class_rows(inp)}{sections}"
            f"<h2>Training config</h2><table>{cfg_rows}</table>"
            f"<details><summary>full config and lineage (JSON)</summary><pre>"
            f"{_e(json.dumps({'config': model.get('config'), 'lineage': model.get('lineage')}, indent=2, default=str))}"
            f"</pre></details>")
    return _write(out_dir / "index.html", _page(f"digitforge report: model {model.get('id')}", body))


def _delta(a, b, pct=False, higher_is_better=True) -> str:
    if a is None or b is None:
        return "<td>–</td>"
    d = b - a
    cls = "pos" if (d > 0) == higher_is_better and d != 0 else ("neg" if d != 0 else "")
    text = f"{100 * d:+.2f} pts" if pct else f"{d:+.4f}"
    return f"<td class={cls}>{text}</td>"


def verdict(a: ReportInputs, b: ReportInputs) -> str:
    """One sentence with numbers: which model is better, and each model's weakest classes."""
    acc_a, acc_b = a.model.get("test_accuracy"), b.model.get("test_accuracy")
    parts = []
    if acc_a is not None and acc_b is not None:
        d = 100 * (acc_b - acc_a)
        who = "B" if d > 0 else "A"
        parts.append(f"{who} is {abs(d):.2f} points more accurate ({100 * acc_a:.2f}% vs {100 * acc_b:.2f}%).")
    for tag, inp in (("A", a), ("B", b)):
        rows = sorted(class_table(inp.model.get("metrics") or {}), key=lambda r: r["f1"])[:3]
        if rows:
            weak = ", ".join(f"{inp.class_names[r['class']]} (F1 {r['f1']:.3f})" for r in rows)
            parts.append(f"{tag}'s weakest classes: {weak}.")
    return " ".join(parts)


def write_comparison(a: ReportInputs, b: ReportInputs, out_dir: str | Path) -> Path:
    """compare.html: two models side by side (every chart of each), the metric deltas (B - A), and
    per-class F1 of both on one chart. Classes are compared by index (0-9), so a digits model and a
    fashion model of the same architecture line up class for class."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fa, na = render_charts(a, out_dir, "a_")
    fb, nb = render_charts(b, out_dir, "b_")
    ta, tb = class_table(a.model.get("metrics") or {}), class_table(b.model.get("metrics") or {})
    same_classes = a.class_names == b.class_names
    names = a.class_names if same_classes else [f"{x} / {y}" for x, y in zip(a.class_names, b.class_names)]
    extra = {}
    if ta and tb:
        per_class_bars([(f"A: {a.model.get('architecture')} on {a.model.get('dataset')}", [r["f1"] for r in ta]),
                        (f"B: {b.model.get('architecture')} on {b.model.get('dataset')}", [r["f1"] for r in tb])],
                       names, out_dir / "per_class_f1.png")
        extra["per_class_f1"] = "per_class_f1.png"
    ha, hb = headline(a.model), headline(b.model)
    head_rows = "".join(
        f"<tr><td class=l>{_e(k)}</td><td>{_fmt(ha[k], k == 'test accuracy', k == 'train seconds')}</td>"
        f"<td>{_fmt(hb[k], k == 'test accuracy', k == 'train seconds')}</td>"
        + (_delta(ha[k], hb[k], pct=k == "test accuracy", higher_is_better=k == "test accuracy")
           if k in ("test accuracy", "test loss") else "<td></td>") + "</tr>"
        for k in ha)
    class_rows = "".join(
        f"<tr><td>{i}</td><td class=l>{_e(names[i])}</td>"
        f"<td>{ra['recall']:.4f}</td><td>{rb['recall']:.4f}</td>{_delta(ra['recall'], rb['recall'])}"
        f"<td>{ra['f1']:.4f}</td><td>{rb['f1']:.4f}</td>{_delta(ra['f1'], rb['f1'])}</tr>"
        for i, (ra, rb) in enumerate(zip(ta, tb)))
    side = "".join(
        f"<h2>{_e(title)}</h2><div class=cols><div>{_chart_html(chart, fa, na)}</div>"
        f"<div>{_chart_html(chart, fb, nb)}</div></div>" for chart, title in CHARTS.items())
    body = (f"<h1>A vs B</h1><div class=cols><div><b>A</b>: {_model_heading(a.model)}</div>"
            f"<div><b>B</b>: {_model_heading(b.model)}</div></div>"
            f"<p class=big style='font-size:1.1em'>{_e(verdict(a, b))}</p>"
            f"<h2>Headline metrics (B − A)</h2><table><tr><th class=l>metric</th><th>A</th><th>B</th><th>B − A</th></tr>"
            f"{head_rows}</table>"
            f"<h2>Per class (by class index)</h2><table><tr><th>#</th><th class=l>class</th><th>recall A</th>"
            f"<th>recall B</th><th>Δ</th><th>F1 A</th><th>F1 B</th><th>Δ</th></tr>{class_rows}</table>"
            + (f"<img src='{extra['per_class_f1']}' alt='per-class F1'>" if extra else "") + side)
    return _write(out_dir / "compare.html", _page(f"digitforge: {a.model.get('id')} vs {b.model.get('id')}", body))
