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

from digitforge.core import config, failures
from digitforge.core.logs import setup_logging
from digitforge.retrain.lease import LeaseHeld
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
        config.dataset_info(cfg, cfg["retrain"]["dataset"])
    except ValueError as e:
        log.error("%s", e)
        return 2
    try:
        summary = retrain(cfg, args.set, from_defaults=args.from_defaults)
    except LeaseHeld as e:
        log.error("%s", e)
        return 3
    except (LookupError, ValueError) as e:  # empty tables, a champion that does not load, bad config
        log.error("%s", e)
        log.error("retrain of %s stopped; the champion is unchanged", cfg["retrain"]["dataset"])
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(failures.run(main))  # a lost or refusing cluster: one line, exit 2/3
