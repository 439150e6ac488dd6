"""Gather what a report shows, then render it with report/render.py.

A registered model (id or alias, from the registry) or a freshly trained one (the train job's result)
-> its weights, its stored metrics and config, the test rows of its snapshot (else the dataset's
raw_test in Cassandra) with the model's predictions on them, and the snapshot's label counts.
Cheap: one model evaluation on 10,000 test rows on the driver and a few PNGs (seconds).
"""
from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

from digitforge.core import storage
from digitforge.core.config import dataset_info, project_location
from digitforge.core.images import NUM_CLASSES
from digitforge.inference.scoring import score_model
from digitforge.registry import artifacts
from digitforge.report.inputs import ReportInputs
from digitforge.report.render import write_comparison, write_report
from digitforge.snapshot import read as rows
from digitforge.snapshot.read import SplitRows

log = logging.getLogger(__name__)


def parse_ref(text: str, default_dataset: str) -> tuple[str, str]:
    """`REF` or `DATASET:REF` (e.g. fashion-mnist:champion) -> (dataset, ref)."""
    dataset, sep, ref = text.rpartition(":")
    return (dataset, ref) if sep and dataset else (default_dataset, text)


def manifest_of(lineage: dict) -> dict | None:
    """The manifest of the snapshot a model was trained on, if that snapshot is still here."""
    path = (lineage or {}).get("snapshot")
    if not path:
        return None
    manifest = storage.join(path, "manifest.json")
    try:
        return json.loads(storage.read_text(manifest)) if storage.exists(manifest) else None
    except (OSError, ValueError) as e:  # storage gone or unreadable: the report goes on without it
        log.warning("snapshot manifest %s unreadable (%s)", manifest, e)
        return None


def test_rows(cfg: dict, dataset: str, manifest: dict | None) -> SplitRows | None:
    """The snapshot's test split, else the dataset's raw_test table, else None (read a chunk at a time)."""
    if manifest is not None:
        try:
            return rows.from_snapshot(manifest, "test")
        except (OSError, ValueError) as e:
            log.warning("snapshot %s unreadable (%s): using raw_test", manifest.get("version"), e)
    keyspace = dataset_info(cfg, dataset)["keyspace"]
    try:
        return rows.from_cassandra(cfg, keyspace, "raw_test")
    except Exception as e:  # no table, an empty one, no node: the report goes on without the misclassified grid
        log.warning("no test rows for the report (%s.raw_test: %s)", keyspace, e)
        return None


def label_counts(manifest: dict | None) -> dict[str, list[int]]:
    """Images per label of each split of the snapshot ({} without one)."""
    if manifest is None:
        return {}
    return {split: rows.label_counts(manifest, split) for split in ("train", "test") if split in manifest["rows"]}


def inputs(cfg: dict, dataset: str, model: dict, weights: bytes, manifest: dict | None,
           test: SplitRows | None = None, scored: dict | None = None) -> ReportInputs:
    """ReportInputs for one model (`model`: the registry's details of it). `test` rows are read from
    the snapshot or Cassandra unless given; `scored` is the model's evaluate() on them (with the images of
    the grid's rows, keep_wrong=report.misclassified), if done."""
    class_names = [str(c) for c in dataset_info(cfg, dataset).get("classes") or range(NUM_CLASSES)]
    test = test if test is not None else test_rows(cfg, dataset, manifest)
    inp = ReportInputs(model=model, class_names=class_names, state_dict=artifacts.weights_from_bytes(weights),
                       label_counts=label_counts(manifest), misclassified_limit=misclassified_limit(cfg))
    if test is not None:
        if scored is None:
            scored = score_model(model.get("id"), model["architecture"], weights, test, inp.misclassified_limit)
        inp.test_images, inp.test_labels = scored["wrong_images"], scored["labels"]
        inp.test_predictions, inp.test_confidences = scored["predictions"], scored["confidences"]
        inp.test_source = f"{test.source} ({scored['rows']} rows; accuracy there {100 * scored['accuracy']:.2f}%)"
    return inp


def misclassified_limit(cfg: dict) -> int:
    """Images in a report's misclassified grid (report.misclassified)."""
    return int(cfg.get("report", {}).get("misclassified", 40))


def model_record(cfg: dict, dataset: str, model_id, result: dict, lineage: dict) -> dict:
    """The registry's details of a model the job just trained, from its train_fn result."""
    return {"id": str(model_id), "dataset": dataset, "architecture": cfg["train"]["architecture"],
            "test_accuracy": result["test_accuracy"], "test_loss": result["test_loss"],
            "train_seconds": result.get("train_seconds"), "config": cfg, "metrics": result.get("metrics") or {},
            "lineage": lineage, "comments": cfg["train"].get("comments", "")}


def rescored(model: dict, scored: dict, source: str) -> dict:
    """A model's details with its test metrics replaced by a new evaluation (on `source`'s rows), its
    per-epoch history kept: two models compared on the same rows show the same rows' numbers."""
    metrics = dict(model.get("metrics") or {}, confusion_matrix=scored["confusion_matrix"], test_rows=scored["rows"],
                   scored_on=source)
    metrics.pop("per_class", None)  # recomputed from the new confusion matrix
    return dict(model, test_accuracy=scored["accuracy"], test_loss=scored["loss"], metrics=metrics)


def out_dir(cfg: dict, name: str) -> str:
    """The folder of one report under report.root (a local path or a URL)."""
    return storage.join(project_location(cfg["report"]["root"]), name)


def store_page(render, target) -> Path | str:
    """render(folder) -> page, into target: a local folder directly; a URL (s3://, hdfs://) through a local
    folder uploaded afterwards (the charts are written by matplotlib, which writes local files)."""
    if not storage.is_url(target):
        return render(Path(target))
    with tempfile.TemporaryDirectory(prefix="digitforge-report-") as tmp:
        page = render(Path(tmp))
        storage.upload_folder(tmp, target, "report.root")
    return storage.join(target, Path(page).name)


def registered_inputs(cfg: dict, dataset: str, ref: str) -> ReportInputs:
    """ReportInputs of a registered model (its weights checked) and of its snapshot's test rows."""
    from digitforge.registry import read as registry_read

    details, weights = registry_read.fetch(cfg, dataset, ref)
    return inputs(cfg, dataset, details, weights, manifest_of(details.get("lineage")))


def model_report(cfg: dict, dataset: str, ref: str, out: str | Path | None = None) -> Path | str:
    """`digitforge report MODEL`: the report of a registered model (id or alias). Returns index.html."""
    inp = registered_inputs(cfg, dataset, ref)
    page = store_page(lambda folder: write_report(inp, folder), out or out_dir(cfg, inp.model["id"]))
    log.info("report of model %s: %s", inp.model["id"], page)
    return page


def compare_report(cfg: dict, a: tuple[str, str], b: tuple[str, str], out: str | Path | None = None) -> Path | str:
    """`digitforge report --compare A B`: two registered models side by side. Returns compare.html."""
    ia, ib = registered_inputs(cfg, *a), registered_inputs(cfg, *b)
    page = store_page(lambda folder: write_comparison(ia, ib, folder),
                   out or out_dir(cfg, f"compare-{ia.model['id'][:8]}-{ib.model['id'][:8]}"))
    log.info("comparison of %s and %s: %s", ia.model["id"], ib.model["id"], page)
    return page


def trained_model_report(cfg: dict, dataset: str, model_id, result: dict, lineage: dict, manifest: dict,
                         test: SplitRows | None = None) -> Path | str | None:
    """The train job's report of the model it just registered, from what it has in hand (no registry
    read). Never fails the job: a report that cannot be written is logged and skipped."""
    if not cfg.get("report", {}).get("enabled", True):
        return None
    try:
        inp = inputs(cfg, dataset, model_record(cfg, dataset, model_id, result, lineage), result["weights"],
                     manifest, test)
        page = store_page(lambda folder: write_report(inp, folder), out_dir(cfg, str(model_id)))
    except Exception as e:  # the model is registered; a missing report must not turn that into a failure
        log.warning("report of model %s not written: %s", model_id, e)
        return None
    log.info("report of model %s: %s", model_id, page)
    return page
