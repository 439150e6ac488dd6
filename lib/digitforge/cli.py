"""The `digitforge` command: schema and registry."""
from __future__ import annotations

import argparse
import json
import logging
import sys

from . import config as configmod
from .logs import setup_logging

log = logging.getLogger("digitforge")


def _print(obj, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj, indent=2, default=str))
    elif isinstance(obj, list):
        for m in obj:
            print(f"{m['id']}  {m['architecture']:<8} acc {m['test_accuracy']:.4f}  loss {m['test_loss']:.4f}  {m['upload_date']}")
    else:
        for k, v in obj.items():
            print(f"{k:>14}: {v}")


def main(argv=None) -> int:
    setup_logging()
    p = argparse.ArgumentParser(prog="digitforge", description=__doc__)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    sub = p.add_subparsers(dest="command", required=True)

    sch = sub.add_parser("schema", help="Cassandra schema").add_subparsers(dest="action", required=True)
    sch.add_parser("apply", help="create keyspaces and tables if missing (idempotent)")

    reg = sub.add_parser("registry", help="the model registry").add_subparsers(dest="action", required=True)
    r_list = reg.add_parser("list", help="models of a dataset, oldest first")
    r_best = reg.add_parser("best", help="the best model of a dataset")
    r_best.add_argument("--by", choices=["accuracy", "loss"], default="accuracy")
    for r in (r_list, r_best):
        r.add_argument("--dataset", default="mnist")
        r.add_argument("--json", action="store_true")

    args = p.parse_args(argv)
    try:
        cfg = configmod.resolve(args.set)
        if args.command == "schema":
            from .cql import apply_schema
            for ks in apply_schema(cfg):
                print(f"schema applied: {ks}")
        elif args.command == "registry":
            from . import registry
            if args.action == "list":
                _print(registry.list_models(cfg, args.dataset), args.json)
            elif args.action == "best":
                _print(registry.best(cfg, args.dataset, args.by), args.json)
    except (LookupError, ValueError, FileNotFoundError) as e:
        log.error("%s", e)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
