"""`digitforge registry fsck`: what a registration cut short leaves behind, and artifacts that no longer
match their checksum.

- orphan chunks: model_chunks partitions whose model has no models row (a driver killed between its
  chunks and its row, a clean-up that failed);
- orphan derived rows: models_by_date / _accuracy / _loss and model_classes rows of no model;
- every model's artifacts reassembled and checked against their sha256.

Candidates are read before the model ids, and only rows older than the grace (registry.fsck_grace_s,
by their write time) count as orphans: a registration in flight writes its chunks before its row.
`--repair` deletes orphans; a corrupt artifact is reported, never deleted (its model row says what it was).
"""
from __future__ import annotations

import logging
import time

from digitforge.core.config import dataset_info
from digitforge.core.connection import session
from digitforge.registry.read import ARTIFACTS, META_COLUMNS, ArtifactError, _read_artifact

log = logging.getLogger(__name__)

# Derived tables keyed by (dataset) + clustering columns ending in the model id.
DERIVED = {"models_by_date": ("upload_date", "id"), "models_by_accuracy": ("test_accuracy", "test_loss", "id"),
           "models_by_loss": ("test_loss", "test_accuracy", "id")}


def _young(writetime_us, grace_s: float, now_s: float) -> bool:
    return writetime_us is not None and writetime_us / 1e6 > now_s - grace_s


def check(cfg: dict, dataset: str, repair: bool = False, grace_s: float | None = None) -> dict:
    """Find (and with repair, delete) orphans and verify every artifact. Returns a report:
    {"orphan_chunks", "orphan_derived", "young" (orphans inside the grace, left alone), "corrupt",
    "unverifiable" (original-demo rows without a checksum), "models", "repaired", "clean"}."""
    keyspace = dataset_info(cfg, dataset)["keyspace"]
    grace_s = float(cfg["registry"].get("fsck_grace_s", 3600) if grace_s is None else grace_s)
    now_s = time.time()
    report = {"keyspace": keyspace, "orphan_chunks": [], "orphan_derived": [], "young": [], "corrupt": [],
              "unverifiable": [], "models": 0, "repaired": 0}
    with session(cfg, keyspace) as s:
        # Candidates first, then the models: a model registered in between is in the second read.
        chunk_parts = {}
        for r in s.execute("SELECT model_id, artifact, WRITETIME(sha256) AS wt FROM model_chunks"):
            key = (r.model_id, r.artifact)
            chunk_parts[key] = max(chunk_parts.get(key) or 0, r.wt or 0)
        derived = []
        for table, clustering in DERIVED.items():
            cols = ", ".join(("dataset",) + clustering)
            for r in s.execute(f"SELECT {cols}, WRITETIME(architecture) AS wt FROM {table}"):
                derived.append((table, r._asdict()))
        for r in s.execute("SELECT model_id, class, WRITETIME(support) AS wt FROM model_classes"):
            derived.append(("model_classes", {"model_id": r.model_id, "class": r[1], "wt": r.wt}))
        rows = {r.id: r for r in s.execute(f"SELECT {META_COLUMNS} FROM models")}
        report["models"] = len(rows)

        deletes = []
        for (model_id, artifact), wt in sorted(chunk_parts.items(), key=str):
            if model_id in rows:
                continue
            item = {"table": "model_chunks", "model_id": str(model_id), "artifact": artifact}
            if _young(wt, grace_s, now_s):
                report["young"].append(item)
                continue
            report["orphan_chunks"].append(item)
            deletes.append(("DELETE FROM model_chunks WHERE model_id = %s AND artifact = %s", (model_id, artifact)))
        for table, r in derived:
            model_id = r.get("id") or r.get("model_id")
            if model_id in rows:
                continue
            item = {"table": table, "model_id": str(model_id)}
            if _young(r.get("wt"), grace_s, now_s):
                report["young"].append(item)
                continue
            report["orphan_derived"].append(item)
            if table == "model_classes":
                deletes.append(("DELETE FROM model_classes WHERE model_id = %s AND class = %s", (model_id, r["class"])))
            else:
                keys = ("dataset",) + DERIVED[table]
                where = " AND ".join(f"{k} = %s" for k in keys)
                deletes.append((f"DELETE FROM {table} WHERE {where}", tuple(r[k] for k in keys)))

        for model_id, row in rows.items():
            for artifact in ARTIFACTS:
                if not getattr(row, f"{artifact}_sha256"):
                    if artifact == "network":  # an original-demo row (pickled, no checksum): listed, never loaded
                        report["unverifiable"].append(str(model_id))
                    continue
                try:
                    _read_artifact(s, row, artifact, f"model {model_id}")
                except ArtifactError as e:
                    report["corrupt"].append({"model_id": str(model_id), "artifact": artifact, "error": str(e)})

        for item in report["orphan_chunks"] + report["orphan_derived"]:
            log.warning("orphan %s row(s) of model %s (no models row)%s", item["table"], item["model_id"],
                        "" if repair else "; `--repair` deletes them")
        for item in report["young"]:
            log.info("%s row(s) of model %s have no models row yet but are younger than %.0fs (a registration may be "
                     "in flight): left alone", item["table"], item["model_id"], grace_s)
        for item in report["corrupt"]:
            log.error("model %s: %s", item["model_id"], item["error"])
        if repair:
            for stmt, params in deletes:
                s.execute(stmt, params)
            report["repaired"] = len(deletes)
            if deletes:
                log.info("deleted %d orphan rows/partitions in %s", len(deletes), keyspace)
    report["clean"] = not report["corrupt"] and (repair or not (report["orphan_chunks"] or report["orphan_derived"]))
    log.info("fsck %s: %d models, %d orphan chunk partitions, %d orphan derived rows, %d young left alone, "
             "%d corrupt artifacts%s", keyspace, report["models"], len(report["orphan_chunks"]),
             len(report["orphan_derived"]), len(report["young"]), len(report["corrupt"]),
             f", {report['repaired']} deleted" if repair else "")
    return report
