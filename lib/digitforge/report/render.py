"""Model reports: one HTML page per model with its charts, and a page comparing two models.

Pure functions of plain inputs (ReportInputs): no database, no Spark. report/data.py gathers the inputs.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

from digitforge.report.charts import (confusion_heatmap, conv_filters, label_balance, misclassified_grid,
                                      per_class_bars, training_curves)
from digitforge.report.inputs import ReportInputs
from digitforge.report.summary import class_table, headline, verdict

CHARTS = {"curves": "Training curves", "confusion": "Confusion matrix", "filters": "First-layer filters",
          "misclassified": "Misclassified test images", "balance": "Label balance"}


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
