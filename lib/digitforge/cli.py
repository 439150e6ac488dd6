"""The `digitforge` command: schema, registry, reports, training runs and retrain runs.

Every subcommand takes `--keyspace KS`: the keyspace that holds the raw tables and the registry (default:
the dataset's, datasets.<name>.keyspace). Commands that read the registry first check the keyspace is at
the current schema, so an original-demo or older keyspace is one error naming what `schema apply` adds."""
from __future__ import annotations

import argparse
import json
import logging
import re
import sys

from digitforge.core import config as configmod
from digitforge.core import connection
from digitforge.core.schema import KEYSPACE_NAME
from digitforge.core.logs import setup_logging

log = logging.getLogger("digitforge")


def _print(obj, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj, indent=2, default=str))
    elif isinstance(obj, list):
        for m in obj:
            if m.get("origin") == "original-demo":
                print(f"{m['id']}  original demo model, pickled: not loadable  {m['upload_date']}  {m['comments'] or ''}")
                continue
            tags = f"  [{', '.join(m['aliases'])}]" if m.get("aliases") else ""
            print(f"{m['id']}  {m['architecture'] or '?':<8} acc {_num(m['test_accuracy'])}  loss {_num(m['test_loss'])}  "
                  f"{m['upload_date']}{tags}")
    else:
        for k, v in obj.items():
            if k == "origin" and v == "digitforge":
                continue
            print(f"{k:>14}: {json.dumps(v, default=str) if isinstance(v, (dict, list)) else v}")


def _num(x) -> str:
    return "   ?  " if x is None else f"{x:.4f}"


def _print_aliases(rows: list[dict], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for a in rows:
        print(f"{a['alias']} -> {a['model_id']}")
        for h in a["history"]:
            print(f"    {h['changed_at']}  {h['from'] or '(none)'} -> {h['to']}  by {h['by'] or '?'}: {h['reason']}")


def main(argv=None) -> int:
    """The `digitforge` command line; returns the exit code (2 for bad input, config or references)."""
    setup_logging()
    p = argparse.ArgumentParser(prog="digitforge", description=__doc__)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    sub = p.add_subparsers(dest="command", required=True)

    sch = sub.add_parser("schema", help="Cassandra schema").add_subparsers(dest="action", required=True)
    s_apply = sch.add_parser("apply", help="create keyspaces and tables if missing, add missing columns to tables of "
                             "the original demo or an older digitforge (idempotent; changes and deletes nothing)")
    configmod.add_keyspace_flag(s_apply)

    cas = sub.add_parser("cassandra", help="the cluster of the config (cassandra: section, $DIGITFORGE_CASSANDRA)"
                         ).add_subparsers(dest="action", required=True)
    c_conf = cas.add_parser("spark-conf", help="the connector's spark.cassandra.* settings as a Spark properties "
                            "file (for spark-sql, the SQL server, spark-submit --properties-file)")
    c_conf.add_argument("--out", help="write them to this file, readable by you only (it may hold the password)")

    reg = sub.add_parser("registry", help="the model registry (a model is named by its id or an alias)"
                         ).add_subparsers(dest="action", required=True)
    r_list = reg.add_parser("list", help="models of a dataset, oldest first")
    r_show = reg.add_parser("show", help="one model: metrics, config, lineage, artifacts, aliases")
    r_show.add_argument("model", metavar="ID", help="model id or alias")
    r_best = reg.add_parser("best", help="the best model of a dataset")
    r_best.add_argument("--by", choices=["accuracy", "loss"], default="accuracy")
    r_promote = reg.add_parser("promote", help="point an alias (default: champion) at a model")
    r_promote.add_argument("model", metavar="ID", help="model id or alias")
    r_promote.add_argument("--alias", default="champion")
    r_promote.add_argument("--reason", default="", help="why (kept in the alias history)")
    r_export = reg.add_parser("export", help="write a model's weights (.safetensors) and a .json of its details, "
                              "or (--format mlflow) an MLflow model directory")
    r_export.add_argument("model", metavar="ID", help="model id or alias")
    r_export.add_argument("path", metavar="PATH", help="a .safetensors file name or a folder; with --format mlflow, "
                          "a new (or empty) folder for the MLflow model")
    r_export.add_argument("--format", choices=["safetensors", "mlflow"], default="safetensors",
                          help="mlflow: MLflow's PyTorch flavor (pt2 graph, signature, metrics and config as metadata)")
    r_aliases = reg.add_parser("aliases", help="aliases, the models they point at, and their history")
    r_reindex = reg.add_parser("reindex", help="rebuild the CQL query tables from the models table")
    r_register = reg.add_parser("register", help="register a finished training run from its checkpoint "
                                "(after the train job exited 3: registration failed)")
    r_register.add_argument("run_id", metavar="RUN_ID", help="the run (a folder under train.checkpoint_dir)")
    r_fsck = reg.add_parser("fsck", help="find orphan chunks and derived rows, verify every artifact's sha256")
    r_fsck.add_argument("--repair", action="store_true", help="delete the orphans found")
    r_fsck.add_argument("--grace-s", type=float, help="only rows older than this count as orphans "
                        "(default registry.fsck_grace_s)")
    for r in (r_list, r_show, r_best, r_promote, r_export, r_aliases, r_reindex, r_register, r_fsck):
        r.add_argument("--dataset", default="mnist")
        configmod.add_keyspace_flag(r)
        r.add_argument("--json", action="store_true")

    rep = sub.add_parser("report", help="a model's report (PNG charts, one HTML page), or two models side by side")
    rep.add_argument("model", nargs="?", metavar="MODEL", help="model id or alias, or DATASET:ID_OR_ALIAS")
    rep.add_argument("--compare", nargs=2, metavar=("A", "B"),
                     help="two models side by side, e.g. mnist:champion fashion-mnist:champion")
    rep.add_argument("--dataset", default="mnist", help="the dataset of models named without one")
    configmod.add_keyspace_flag(rep)  # the keyspace of --dataset; DATASET:REF names use their dataset's
    rep.add_argument("--out", help="folder for the page and its images (default: report.root/<model id>)")
    rep.add_argument("--json", action="store_true")
    rt = sub.add_parser("retrain", help="nightly retraining (the job: scripts/submit.sh retrain)"
                        ).add_subparsers(dest="action", required=True)
    rt_runs = rt.add_parser("runs", help="a dataset's latest retrain runs: both scores, decision, reason")
    rt_runs.add_argument("--dataset", default="mnist")
    configmod.add_keyspace_flag(rt_runs)
    rt_runs.add_argument("--limit", type=int, default=20)
    rt_runs.add_argument("--json", action="store_true")

    runs = sub.add_parser("runs", help="training runs (their checkpoint folders, train.checkpoint_dir)"
                          ).add_subparsers(dest="action", required=True)
    runs_tb = runs.add_parser("tensorboard", help="print the command that shows the runs' curves in TensorBoard")
    runs_tb.add_argument("run_id", nargs="?", metavar="RUN_ID", help="one run only (default: every run)")
    runs_tb.add_argument("--port", type=int, default=6006)

    args = p.parse_args(argv)
    if args.command == "report" and bool(args.model) == bool(args.compare):
        p.error("report: give a MODEL or --compare A B")
    try:
        cfg = configmod.resolve(args.set)
        if args.command == "schema":
            from digitforge.core.cql import apply_schema
            if args.keyspace and not re.fullmatch(KEYSPACE_NAME, args.keyspace):
                raise configmod.ConfigError(f"{args.keyspace!r} is not a keyspace name (letters, digits, _; at most 48)")
            for ks in apply_schema(cfg, [args.keyspace] if args.keyspace else None):
                print(f"schema applied: {ks}")
            return 0
        if args.command == "cassandra":
            text = "".join(f"{k} {v}\n" for k, v in connection.connector_conf(cfg).items())
            if args.out:
                connection.write_private(args.out, text)
            else:
                sys.stdout.write(text)
            return 0
        if args.command == "runs":  # training runs live in train.checkpoint_dir, not in a keyspace
            import shlex

            from digitforge.training import tensorboard
            root = configmod.project_location(cfg["train"]["checkpoint_dir"] or "")
            if not cfg["train"]["checkpoint_dir"]:
                raise ValueError("train.checkpoint_dir is empty: runs write no checkpoints or TensorBoard events")
            print(shlex.join(tensorboard.command(root, args.run_id, args.port)))
            return 0
        from digitforge.core.tables import require_current
        cfg = configmod.use_keyspace(cfg, args.dataset, args.keyspace)
        require_current(cfg, configmod.dataset_info(cfg, args.dataset)["keyspace"])
        if args.command == "registry":
            from digitforge.registry import aliases as registry_aliases
            from digitforge.registry import read as registry_read
            from digitforge.registry import write as registry_write
            if args.action == "list":
                _print(registry_read.list_models(cfg, args.dataset), args.json)
            elif args.action == "best":
                _print(registry_read.best(cfg, args.dataset, args.by), args.json)
            elif args.action == "show":
                _print(registry_read.show(cfg, args.dataset, args.model), args.json)
            elif args.action == "promote":
                _print(registry_aliases.promote(cfg, args.dataset, args.model, args.alias, args.reason), args.json)
            elif args.action == "export":
                if args.format == "mlflow":
                    from digitforge.registry import mlflow_export
                    _print(mlflow_export.export(cfg, args.dataset, args.model, args.path), args.json)
                else:
                    _print(registry_read.export(cfg, args.dataset, args.model, args.path), args.json)
            elif args.action == "aliases":
                _print_aliases(registry_aliases.list_aliases(cfg, args.dataset), args.json)
            elif args.action == "reindex":
                _print({"dataset": args.dataset, "models": registry_write.reindex(cfg, args.dataset)}, args.json)
            elif args.action == "register":
                from digitforge.registry import recover
                try:
                    _print(recover.register_run(cfg, args.run_id), args.json)
                except registry_write.RegistrationFailed as e:
                    log.error("%s", e)
                    return 3
            elif args.action == "fsck":
                from digitforge.registry import fsck
                report = fsck.check(cfg, args.dataset, args.repair, args.grace_s)
                _print(report, args.json)
                return 0 if report["clean"] else 1
        elif args.command == "report":
            from digitforge.report import data as report_data
            if args.compare:
                a, b = (report_data.parse_ref(r, args.dataset) for r in args.compare)
                page = report_data.compare_report(cfg, a, b, args.out)
            else:
                page = report_data.model_report(cfg, *report_data.parse_ref(args.model, args.dataset), args.out)
            print(json.dumps({"report": str(page)}) if args.json else page)
        elif args.command == "retrain":
            from digitforge.retrain import records
            runs = records.runs(cfg, configmod.dataset_info(cfg, args.dataset)["keyspace"], args.dataset, args.limit)
            if args.json:
                print(json.dumps(runs, indent=2))
            for r in [] if args.json else runs:
                print(f"{r['started_at']}  {'PROMOTED' if r['promoted'] else 'kept    '}  {r['reason']}")
    except (LookupError, ValueError, FileNotFoundError, FileExistsError) as e:
        log.error("%s", e)
        return 2
    except Exception as e:
        from cassandra import InvalidRequest

        if isinstance(e, InvalidRequest):  # e.g. a keyspace made before the registry tables
            log.error("%s (run `digitforge schema apply`?)", e)
            return 2
        from digitforge.core import failures

        if (explained := failures.explain(e, cfg)) is not None:  # NoHostAvailable, timeouts, refused logins
            log.error("%s", explained[1])
            return explained[0]
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
