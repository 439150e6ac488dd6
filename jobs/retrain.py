"""spark-submit job: nightly retraining that only ever improves the champion.

    scripts/submit.sh retrain --dataset mnist [--margin 0.0005] [--set train.epochs=3] [--from-defaults]

Under a lease in Cassandra (two runs never overlap; a crashed run's lease expires after
retrain.lease_ttl_s): a fresh snapshot of raw_train / raw_test -> a challenger trained with the
champion's stored config (or the defaults), plus any --set -> challenger and champion scored on the
same test rows (the new snapshot's test split) -> the challenger becomes champion only if better by
retrain.margin -> the decision, both scores and the reason recorded in retrain_runs (and, when
promoted, in the champion alias's history) -> a report of the challenger and a comparison page.
Exit codes: 0 done (promoted or not), 2 bad input, 3 another run holds the lease.
"""
import json
import logging
import sys
from datetime import datetime, timezone

from digitforge.core import config
from digitforge.registry import aliases as registry_aliases
from digitforge.registry import read as registry_read
from digitforge.registry import write as registry_write
from digitforge.report.render import write_comparison
from digitforge.report import data as report_data
from digitforge.retrain.challenger import challenger_config
from digitforge.retrain.decision import decide
from digitforge.retrain.records import record_run
from digitforge.snapshot import read as rows
from digitforge.snapshot import convert
from digitforge.inference.scoring import evaluate
from digitforge.retrain.lease import Lease, LeaseHeld
from digitforge.core.logs import setup_logging
from digitforge.core.spark import get_spark
from digitforge.training.launch import run_distributed

log = logging.getLogger("digitforge.jobs.retrain")


def champion_or_none(cfg: dict, dataset: str, alias: str):
    """(details, weights) of the model the alias points at, or None when the alias is not set."""
    try:
        return registry_read.fetch(cfg, dataset, alias)
    except registry_read.AliasNotFound:
        return None


def score(model_id: str, architecture: str, weights: bytes, test: rows.Rows) -> dict:
    scored = evaluate(report_data.build_module(architecture, weights, f"model {model_id}"), test.pixels, test.labels)
    return dict(scored, id=str(model_id))


def main(argv=None) -> int:
    setup_logging()
    p = config.job_parser(__doc__)
    p.add_argument("--margin", type=float, help="how much better the challenger must be (default: retrain.margin)")
    p.add_argument("--metric", choices=["accuracy", "loss"], help="default: retrain.metric")
    p.add_argument("--from-defaults", action="store_true",
                   help="train the challenger with conf/defaults.yaml (+ --set), not the champion's config")
    args = p.parse_args(argv)
    try:
        cfg = config.resolve(args.set, **{"retrain.dataset": args.dataset, "retrain.margin": args.margin,
                                          "retrain.metric": args.metric})
        rc = cfg["retrain"]
        dataset = rc["dataset"]
        keyspace = config.dataset_info(cfg, dataset)["keyspace"]
    except ValueError as e:
        log.error("%s", e)
        return 2
    started = datetime.now(timezone.utc)
    try:
        with Lease(cfg, keyspace, "retrain", ttl_s=rc["lease_ttl_s"]) as lease:
            summary = run(cfg, args, dataset, keyspace, lease, started)
    except LeaseHeld as e:
        log.error("%s", e)
        return 3
    except (LookupError, ValueError) as e:  # empty tables, a champion that does not load, bad config
        log.error("%s", e)
        log.error("retrain of %s stopped; the champion is unchanged", dataset)
        return 2
    print(json.dumps(summary))
    return 0


def run(cfg: dict, args, dataset: str, keyspace: str, lease: Lease, started: datetime) -> dict:
    rc = cfg["retrain"]
    champion = champion_or_none(cfg, dataset, rc["alias"])
    champion_cfg = champion[0]["config"] if champion and rc["from_champion"] and not args.from_defaults else None
    train_cfg, notes = challenger_config(champion_cfg, args.set, dataset)
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
    test = rows.from_snapshot(manifest, "test")

    # 2. The champion on the new test rows, before spending a training run (a champion that no longer
    #    loads stops here).
    champion_score = score(champion[0]["id"], champion[0]["architecture"], champion[1], test) if champion else None

    # 3. The challenger, trained and registered like any model.
    result = run_distributed(train_cfg, manifest)
    spark.stop()
    lineage = {"snapshot": manifest["path"], "snapshot_version": manifest["version"], "rows": manifest["rows"],
               "source": manifest["source"], "retrain_of": champion[0]["id"] if champion else None}
    challenger_id = str(registry_write.register(train_cfg, dataset, result, train_cfg, lineage, train_cfg["train"]["comments"]))
    challenger_score = score(challenger_id, train_cfg["train"]["architecture"], result["weights"], test)

    # 4. Decide, then write the decision only while still holding the lease.
    decision = decide(champion_score, challenger_score, float(rc["margin"]), rc["metric"])
    log.info("%s", decision["reason"])
    lease.check()
    if decision["promote"]:
        registry_aliases.promote(cfg, dataset, challenger_id, rc["alias"], reason=decision["reason"])
    pages = {}
    challenger_page = report_data.trained_model_report(train_cfg, dataset, challenger_id, result, lineage, manifest, test)
    if challenger_page:
        pages["challenger"] = str(challenger_page)
    if champion and cfg["report"]["enabled"]:
        try:  # both models on the same rows, side by side: A the champion, B the challenger
            source = f"snapshot {manifest['version']} test split"
            a = report_data.inputs(cfg, dataset, report_data.rescored(champion[0], champion_score, source),
                                   champion[1], manifest, test, champion_score)
            challenger = report_data.model_record(train_cfg, dataset, challenger_id, result, lineage)
            b = report_data.inputs(cfg, dataset, report_data.rescored(challenger, challenger_score, source),
                                   result["weights"], manifest, test, challenger_score)
            pages["comparison"] = str(write_comparison(a, b, report_data.out_dir(
                cfg, f"retrain-{dataset}-{manifest['version']}")))
        except Exception as e:  # the decision is made; a missing page must not undo it
            log.warning("comparison page not written: %s", e)
    strip = ("predictions", "confidences", "confusion_matrix")
    run_record = {"dataset": dataset, "started_at": started, "snapshot": manifest["version"], "metric": rc["metric"],
                  "margin": rc["margin"], "owner": lease.owner, **decision,
                  "champion": {k: v for k, v in champion_score.items() if k not in strip} if champion_score else None,
                  "challenger": {k: v for k, v in challenger_score.items() if k not in strip},
                  "details": {"notes": notes, "reports": pages}}
    run_id = record_run(cfg, keyspace, run_record)
    for name, page in pages.items():
        log.info("%s report: %s", name, page)
    return {"run_id": str(run_id), "dataset": dataset, "snapshot": manifest["version"], "promoted": decision["promote"],
            "reason": decision["reason"], "champion": run_record["champion"], "challenger": run_record["challenger"],
            "champion_now": challenger_id if decision["promote"] else champion[0]["id"], "reports": pages}


if __name__ == "__main__":
    sys.exit(main())
