"""One nightly retrain run, under the lease: a fresh snapshot -> the champion scored on its test split ->
a challenger trained (the champion's recipe + --set) and registered -> scored on the same rows -> promoted
only if better by retrain.margin -> the run recorded in retrain_runs -> reports."""
from __future__ import annotations

import logging

from digitforge.core.clock import now_ms
from digitforge.core.config import dataset_info
from digitforge.core.spark import get_spark
from digitforge.core.tables import require_current
from digitforge.inference.scoring import score_model
from digitforge.registry import aliases, read, write
from digitforge.registry.lineage import lineage
from digitforge.report import data as report_data
from digitforge.report.render import write_comparison
from digitforge.retrain.challenger import challenger_config
from digitforge.retrain.decision import decide
from digitforge.retrain.lease import Lease
from digitforge.retrain.records import record_run
from digitforge.snapshot import convert
from digitforge.snapshot.read import SplitRows, from_snapshot
from digitforge.training.launch import run_distributed

log = logging.getLogger("digitforge.retrain")
# per-row results and the grid's images: not part of the run's record
SCORE_DETAILS = ("ids", "labels", "predictions", "confidences", "wrong_images", "confusion_matrix")


def champion_or_none(cfg: dict, dataset: str, alias: str):
    """(details, weights) of the model the alias points at, or None when the alias is not set."""
    try:
        return read.fetch(cfg, dataset, alias)
    except read.AliasNotFound:
        return None


def retrain(cfg: dict, overrides: list[str], from_defaults: bool = False) -> dict:
    """The whole run for cfg['retrain']['dataset'] under its lease (LeaseHeld if another run holds it).
    Returns the run's summary (both scores, the decision, the reports)."""
    rc = cfg["retrain"]
    keyspace = dataset_info(cfg, rc["dataset"])["keyspace"]
    require_current(cfg, keyspace)  # the lease, the registry and retrain_runs, before any work
    started = now_ms()
    with Lease(cfg, keyspace, "retrain", ttl_s=rc["lease_ttl_s"]) as lease:
        return _run(cfg, overrides, from_defaults, keyspace, lease, started)


def _run(cfg: dict, overrides: list[str], from_defaults: bool, keyspace: str, lease: Lease, started) -> dict:
    rc = cfg["retrain"]
    dataset = rc["dataset"]
    champion = champion_or_none(cfg, dataset, rc["alias"])
    champion_cfg = champion[0]["config"] if champion and rc["from_champion"] and not from_defaults else None
    train_cfg, notes = challenger_config(champion_cfg, overrides, dataset)
    train_cfg["train"]["comments"] = f"retrain challenger ({'; '.join(notes)})"
    log.info("champion: %s; challenger: %s, %s", champion[0]["id"] if champion else "none",
             train_cfg["train"]["architecture"], "; ".join(notes))

    # 1. A fresh snapshot of the current tables.
    spark = get_spark(f"digitforge-retrain-{dataset}", cfg)
    try:
        manifest = convert.take(spark, cfg, dataset, keyspace)  # SnapshotError is a ValueError: exit 2
    except Exception:
        spark.stop()
        raise
    test = from_snapshot(manifest, "test")

    # 2. The champion on the new test rows, before spending a training run (a champion that no longer
    #    loads stops here).
    champion_score = (_score(cfg, champion[0]["id"], champion[0]["architecture"], champion[1], test)
                      if champion else None)

    # 3. The challenger, trained and registered like any model.
    result = run_distributed(train_cfg, manifest)
    spark.stop()
    trained_on = lineage(manifest, retrain_of=champion[0]["id"] if champion else None)
    # Every write from here on first checks the lease (renewing it): a run that lost it writes nothing more.
    lease.check("registering the challenger")
    challenger_id = str(write.register(train_cfg, dataset, result, train_cfg, trained_on, train_cfg["train"]["comments"]))
    challenger_score = _score(cfg, challenger_id, train_cfg["train"]["architecture"], result["weights"], test)

    # 4. Decide, then write the decision.
    decision = decide(champion_score, challenger_score, float(rc["margin"]), rc["metric"])
    log.info("%s", decision["reason"])
    if decision["promote"]:
        lease.check("promoting the challenger")
        aliases.promote(cfg, dataset, challenger_id, rc["alias"], reason=decision["reason"])
    pages = _reports(cfg, train_cfg, manifest, test, champion, champion_score, challenger_id, result, trained_on,
                     challenger_score)
    run_record = {"dataset": dataset, "started_at": started, "snapshot": manifest["version"], "metric": rc["metric"],
                  "margin": rc["margin"], "owner": lease.owner, **decision,
                  "champion": _brief(champion_score) if champion_score else None,
                  "challenger": _brief(challenger_score), "details": {"notes": notes, "reports": pages}}
    lease.check("recording the run")
    run_id = record_run(cfg, keyspace, run_record)
    for name, page in pages.items():
        log.info("%s report: %s", name, page)
    return {"run_id": str(run_id), "dataset": dataset, "snapshot": manifest["version"], "promoted": decision["promote"],
            "reason": decision["reason"], "champion": run_record["champion"], "challenger": run_record["challenger"],
            "champion_now": challenger_id if decision["promote"] else champion[0]["id"], "reports": pages}


def _score(cfg: dict, model_id: str, architecture: str, weights: bytes, test: SplitRows) -> dict:
    """A model scored on the run's test rows (both models get the very same rows and function), with the
    images its report's grid shows."""
    return score_model(model_id, architecture, weights, test, report_data.misclassified_limit(cfg))


def _brief(score: dict) -> dict:
    return {k: v for k, v in score.items() if k not in SCORE_DETAILS}


def _reports(cfg, train_cfg, manifest, test, champion, champion_score, challenger_id, result, trained_on,
             challenger_score) -> dict[str, str]:
    """The challenger's report and, with a champion, both side by side on the same rows. Never fails the
    run: the decision is made and recorded whatever happens here."""
    dataset = cfg["retrain"]["dataset"]
    pages = {}
    challenger_page = report_data.trained_model_report(train_cfg, dataset, challenger_id, result, trained_on,
                                                       manifest, test)
    if challenger_page:
        pages["challenger"] = str(challenger_page)
    if champion and cfg["report"]["enabled"]:
        try:  # A the champion, B the challenger
            source = f"snapshot {manifest['version']} test split"
            a = report_data.inputs(cfg, dataset, report_data.rescored(champion[0], champion_score, source),
                                   champion[1], manifest, test, champion_score)
            challenger = report_data.model_record(train_cfg, dataset, challenger_id, result, trained_on)
            b = report_data.inputs(cfg, dataset, report_data.rescored(challenger, challenger_score, source),
                                   result["weights"], manifest, test, challenger_score)
            pages["comparison"] = str(report_data.store_page(lambda folder: write_comparison(a, b, folder),
                                                             report_data.out_dir(cfg, f"retrain-{dataset}-{manifest['version']}")))
        except Exception as e:  # the decision is made; a missing page must not undo it
            log.warning("comparison page not written: %s", e)
    return pages
