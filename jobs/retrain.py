"""spark-submit job: nightly retraining that only ever improves the champion.

    scripts/submit.sh retrain --dataset mnist [--keyspace KS] [--margin 0.0005] [--set train.epochs=3] [--from-defaults]

Under a lease in Cassandra (two runs never overlap; a crashed run's lease expires after
retrain.lease_ttl_s): a fresh snapshot of raw_train / raw_test -> a challenger trained with the
champion's stored config (or the defaults), plus any --set -> challenger and champion scored on the
same test rows (the new snapshot's test split) -> the challenger becomes champion only if better by
retrain.margin -> the decision, both scores and the reason recorded in retrain_runs (and, when
promoted, in the champion alias's history) -> a report of the challenger and a comparison page.
Every write after the challenger is trained (its registration, the promotion, the run record) first
checks that this run still holds the lease (Lease.check renews it): a run whose lease was taken over
writes nothing more.
Exit codes: 0 done (promoted or not), 2 bad input (or a keyspace that needs `digitforge schema apply`,
found before any work), 3 another run holds the lease or took it over.
"""
import json
import logging
import sys

from digitforge.core import config, failures
from digitforge.core.logs import setup_logging
from digitforge.retrain.lease import LeaseHeld, LeaseLost
from digitforge.retrain.run import retrain

log = logging.getLogger("digitforge.jobs.retrain")


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
        cfg = config.use_keyspace(cfg, cfg["retrain"]["dataset"], args.keyspace)
    except ValueError as e:
        log.error("%s", e)
        return 2
    try:
        summary = retrain(cfg, args.set, from_defaults=args.from_defaults)
    except LeaseHeld as e:
        log.error("%s", e)
        return 3
    except LeaseLost as e:  # fenced: another run owns the lease now, so this one writes nothing more
        log.error("%s; this run registered, promoted and recorded nothing after losing it", e)
        return 3
    except (LookupError, ValueError) as e:  # empty tables, a champion that does not load, bad config
        log.error("%s", e)
        log.error("retrain of %s stopped; the champion is unchanged", cfg["retrain"]["dataset"])
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(failures.run(main))  # a lost or refusing cluster: one line, exit 2/3
