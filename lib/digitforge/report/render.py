"""Model reports: one HTML page per model with its charts, and a page comparing two models, rendered from
the Jinja2 templates in report/templates (autoescaped: a class name or comment cannot inject markup).

Pure functions of plain inputs (ReportInputs): no database, no Spark. report/data.py gathers the inputs.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from digitforge.core.progress import progress
from digitforge.report.charts import (confusion_heatmap, conv_filters, label_balance, misclassified_grid,
                                      per_class_bars, training_curves)
from digitforge.report.inputs import ReportInputs
from digitforge.report.summary import class_table, headline, verdict

CHARTS = {"curves": "Training curves", "confusion": "Confusion matrix", "filters": "First-layer filters",
          "misclassified": "Misclassified test images", "balance": "Label balance"}


def _metric(value, key: str = "") -> str:
    """A headline number as shown: accuracy in %, seconds with 's', other floats to 4 places."""
    if value is None:
        return "–"
    if key == "train seconds":
        return f"{float(value):.1f} s"
    if isinstance(value, float):
        return f"{100 * value:.2f}%" if key == "test accuracy" else f"{value:.4f}"
    return str(value)


@lru_cache(maxsize=1)
def _templates():
    """The report templates (report/templates), HTML-escaping every value they are given."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=False, keep_trailing_newline=True)
    env.filters["metric"] = _metric
    return env


def _write_page(path: Path, template: str, **context) -> Path:
    """Render a template to path; written under a temporary name and renamed, so a reader never sees half a page."""
    text = _templates().get_template(template).render(charts=CHARTS, **context)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def render_charts(inp: ReportInputs, out_dir: Path, prefix: str = "") -> tuple[dict[str, str], dict[str, str]]:
    """Draw every chart this input allows. Returns ({chart: file name}, {chart: why it is missing})."""
    out_dir = Path(out_dir)
    m = inp.model.get("metrics") or {}
    label = f"{inp.model.get('architecture', '?')} on {inp.model.get('dataset', '?')}"
    files, notes = {}, {}
    bar = progress(total=len(CHARTS), desc=f"report charts of {label}", unit="chart")

    def name(chart):
        return f"{prefix}{chart}.png"

    if m.get("history"):
        training_curves(m["history"], out_dir / name("curves"), label)
        files["curves"] = name("curves")
    else:
        notes["curves"] = "no per-epoch history stored with this model"
    bar.update()
    if m.get("confusion_matrix"):
        confusion_heatmap(m["confusion_matrix"], inp.class_names, out_dir / name("confusion"), f"confusion matrix: {label}")
        files["confusion"] = name("confusion")
    else:
        notes["confusion"] = "no confusion matrix stored with this model"
    bar.update()
    if inp.state_dict is None:
        notes["filters"] = "weights not loaded"
    elif conv_filters(inp.state_dict, out_dir / name("filters")) is None:
        notes["filters"] = f"{inp.model.get('architecture', 'this model')} has no convolution layer (fully connected only)"
    else:
        files["filters"] = name("filters")
    bar.update()
    if inp.test_predictions is not None:
        _, n_wrong = misclassified_grid(inp.test_images, inp.test_labels, inp.test_predictions, inp.class_names,
                                        out_dir / name("misclassified"), inp.test_confidences,
                                        inp.misclassified_limit)
        files["misclassified"] = name("misclassified")
        if inp.test_source:
            notes["misclassified"] = f"the model run on {inp.test_source}"
    else:
        notes["misclassified"] = "no test rows available to run the model on"
    bar.update()
    if inp.label_counts:
        label_balance(inp.label_counts, inp.class_names, out_dir / name("balance"), f"label balance: {inp.model.get('dataset', '')}")
        files["balance"] = name("balance")
    else:
        notes["balance"] = "no label counts available"
    bar.update()
    bar.close()
    return files, notes


def write_report(inp: ReportInputs, out_dir: str | Path) -> Path:
    """Charts + index.html for one model in out_dir. Returns the page's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files, notes = render_charts(inp, out_dir)
    model = inp.model
    classes = [dict(r, name=inp.class_names[r["class"]] if r["class"] < len(inp.class_names) else r["class"])
               for r in class_table(model.get("metrics") or {})]
    config_json = json.dumps({"config": model.get("config"), "lineage": model.get("lineage")}, indent=2, default=str)
    return _write_page(out_dir / "index.html", "model.html.j2", title=f"digitforge report: model {model.get('id')}",
                       model=model, headline=headline(model), classes=classes, files=files, notes=notes,
                       train_config=(model.get("config") or {}).get("train", {}), config_json=config_json)


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
    per_class_f1 = None
    if ta and tb:
        per_class_bars([(f"A: {a.model.get('architecture')} on {a.model.get('dataset')}", [r["f1"] for r in ta]),
                        (f"B: {b.model.get('architecture')} on {b.model.get('dataset')}", [r["f1"] for r in tb])],
                       names, out_dir / "per_class_f1.png")
        per_class_f1 = "per_class_f1.png"
    return _write_page(out_dir / "compare.html", "compare.html.j2",
                       title=f"digitforge: {a.model.get('id')} vs {b.model.get('id')}", a=a.model, b=b.model,
                       verdict=verdict(a, b), headline_a=headline(a.model), headline_b=headline(b.model),
                       class_pairs=list(zip(ta, tb)), class_names=names, per_class_f1=per_class_f1,
                       files_a=fa, notes_a=na, files_b=fb, notes_b=nb)
