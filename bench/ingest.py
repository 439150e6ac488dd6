"""Ingest benchmark: full MNIST (70,000 rows) written by the ingest job's own functions, side by side with
the original demo's loader (one synchronous `INSERT ... JSON` per row into a `pixels list<int>` table).

    make bench-ingest
    PYTHONPATH=lib .venv/bin/python bench/ingest.py [--original-rows 3000] [--keyspace bench_ingest]

Runs in-process with a SparkSession from digitforge.spark.get_spark (the local Spark profile and the
jars, as under spark-submit), against the local node, in a keyspace of its own that it drops and re-creates
first (and leaves for inspection), with the job's writer (ingest.writer; `--set ingest.writer=cql` for the
connector's). The write stage is staging + writing + (for SSTables) the node's import, of both splits;
reading and checking the IDX files, the Spark start (session and a first trivial job) and the count checks
are timed apart.

Passes: the first into empty tables with a cold JVM, where the write also pays one-off start-up (Cassandra's
writer classes loaded and compiled in the executor, Spark's first job); then --passes more (8) into emptied
tables with the JVM warm (the JIT keeps speeding up the first few): their median is the write stage's
throughput, `rows_per_s`, the figure to set against the original loader's, as for any longer ingest; last,
the same rows again into full tables, to show counts do not double.

One-off job (`rows_per_s_cold_job`, skip with --no-job): the real `scripts/submit.sh ingest` run once, cold,
into an empty keyspace of its own (<keyspace>_job), each of its log lines timed as it arrives, so the phases
of a one-off ingest show: spark-submit and Python start, reading and checking the IDX files, the tables
prepared and the Spark session started, staging + SSTable writing + import (the write stage, the job's own
`write_seconds`), the count checks, and Spark's stop and the JVM's exit.
Last line: one JSON object.

--ring (after `make cassandra-down ring-up`): full MNIST into the ring at RF 3 with the `stream` writer and then
with `cql`, each a cold pass and --passes warm ones (their median), no original loader; the last line holds
stream_rows_per_s, cql_rows_per_s and ratio (warm; *_cold and ratio_cold for the first pass). Addresses of a
ring elsewhere: --set cassandra.hosts=[...].
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))  # this checkout's digitforge

from digitforge.core import config  # noqa: E402
from digitforge.core.connection import session  # noqa: E402
from digitforge.core.cql import apply_schema  # noqa: E402
from digitforge.core.logs import setup_logging  # noqa: E402
from digitforge.core.spark import get_spark  # noqa: E402
from digitforge.ingest import sources  # noqa: E402
from digitforge.ingest.data_files import dataset_folder  # noqa: E402
from digitforge.ingest.load import write_and_check  # noqa: E402
from digitforge.training.precision import cpu_model  # noqa: E402
from measure import run_timed  # noqa: E402  (bench/measure.py)

ROOT = Path(__file__).resolve().parents[1]

log = logging.getLogger("digitforge.bench.ingest")


def original_loader(cfg: dict, keyspace: str, images, labels, n: int) -> float:
    """The original demo's way: one synchronous INSERT ... JSON per row, the JSON inlined in the CQL text,
    into `pixels list<int>`. Returns rows/s."""
    with session(cfg, keyspace) as s:
        s.execute("CREATE TABLE IF NOT EXISTS original_raw_train (id int PRIMARY KEY, label int, pixels list<int>)")
        started = time.time()
        for i in range(n):
            doc = json.dumps({"id": i, "label": int(labels[i]), "pixels": images[i].reshape(-1).tolist()})
            s.execute(f"INSERT INTO original_raw_train JSON '{doc}'")
        seconds = time.time() - started
        stored = s.execute("SELECT count(*) FROM original_raw_train").one()[0]
    if stored != n:
        raise RuntimeError(f"original loader: wrote {n} rows but the table holds {stored}")
    return n / seconds


def ring_main(args) -> int:
    """--ring: full MNIST into the ring (DIGITFORGE_CASSANDRA=ring) with `stream` and with `cql`, in one run:
    per writer a cold pass into empty tables, then --passes warm passes into emptied tables (median)."""
    names = [n for n in os.environ.get(config.CLUSTER_ENV, "").split(",") if n]
    os.environ[config.CLUSTER_ENV] = ",".join(names if "ring" in names else [*names, "ring"])
    base = config.resolve(args.set)
    ks = args.keyspace
    if ks in {d["keyspace"] for d in base["datasets"].values()}:
        raise SystemExit(f"refusing to drop {ks}: it is a dataset's keyspace")
    batches = sources.from_idx(dataset_folder(args.dataset, config.dataset_info(base, args.dataset)["folder"]))
    rows = sum(len(b) for b in batches)
    spark = get_spark("digitforge-bench-ingest-ring", base)
    spark.range(1).count()
    results = {}
    for writer in args.writers:
        cfg = config.resolve([*args.set, f"ingest.writer={writer}"])
        with session(cfg) as s:
            s.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=120)
        apply_schema(cfg, [ks])
        passes = []
        for i in range(args.passes + 1):
            if i:
                with session(cfg, ks) as s:
                    for b in batches:
                        s.execute(f"TRUNCATE {b.table}", timeout=120)
                time.sleep(1)
            reports, write_s = write_and_check(spark, cfg, batches, ks)
            found = sum(r["found"] for r in reports)
            if found != rows or {r["writer"] for r in reports} != {writer}:
                raise RuntimeError(f"{writer} pass {i}: expected {rows} rows by {writer}, found {found} "
                                   f"by {[r['writer'] for r in reports]}")
            log.info("ring, %s, pass %d (%s): %d rows in %.2fs (%.0f rows/s)", writer, i, "cold" if i == 0 else "warm",
                     rows, write_s, rows / write_s)
            passes.append(write_s)
        warm = sorted(passes[1:])[len(passes[1:]) // 2] if len(passes) > 1 else passes[0]
        results[writer] = {"warm": round(rows / warm), "cold": round(rows / passes[0]),
                           "passes": [round(rows / p) for p in passes]}
    spark.stop()
    with session(base) as s:
        nodes = sorted(str(h.endpoint.address) for h in s.cluster.metadata.all_hosts())
    if set(results) != {"stream", "cql"}:  # one writer only (--writers): its figures, no ratio
        print(json.dumps({"rows": rows, "nodes": nodes, **{f"{w}_rows_per_s": r["warm"] for w, r in results.items()},
                          **{f"{w}_rows_per_s_cold": r["cold"] for w, r in results.items()},
                          **{f"{w}_passes": r["passes"] for w, r in results.items()},
                          "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)}))
        return 0
    result = {
        "rows": rows, "nodes": nodes, "replication_factor": base["cassandra"]["replication_factor"],
        "consistency": base["cassandra"]["consistency"],
        "stream_rows_per_s": results["stream"]["warm"], "cql_rows_per_s": results["cql"]["warm"],
        "ratio": round(results["stream"]["warm"] / results["cql"]["warm"], 2),
        "stream_rows_per_s_cold": results["stream"]["cold"], "cql_rows_per_s_cold": results["cql"]["cold"],
        "ratio_cold": round(results["stream"]["cold"] / results["cql"]["cold"], 2),
        "stream_passes": results["stream"]["passes"], "cql_passes": results["cql"]["passes"],
        "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(f"{'writer':<10}{'warm rows/s':>14}{'cold rows/s':>14}")
    for w in ("stream", "cql"):
        print(f"{w:<10}{results[w]['warm']:>14}{results[w]['cold']:>14}")
    print(json.dumps(result))
    return 0


def one_off_job(cfg: dict, dataset: str, keyspace: str, rows: int, overrides: list[str]) -> dict:
    """One cold `scripts/submit.sh ingest` into an emptied keyspace: rows/s end to end and of its write stage,
    and the seconds of each phase, from the job's log lines as they arrive."""
    with session(cfg) as s:
        s.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
    cmd = [str(ROOT / "scripts" / "submit.sh"), "ingest", "--dataset", dataset, "--keyspace", keyspace,
           *[a for o in overrides for a in ("--set", o)]]
    run = run_timed(cmd, cwd=ROOT, rss=True)
    if run.rc != 0:
        sys.stderr.write(run.tail() + "\n")
        raise SystemExit(f"ingest job exited {run.rc}")
    job = json.loads([ln for ln in run.stdout.splitlines() if ln.startswith("{")][-1])
    if job["rows_written"] != rows:
        raise RuntimeError(f"ingest job wrote {job['rows_written']} rows, expected {rows}")
    marks = {"submit -> IDX read+checked": run.last(" rows for "),
             "write done": run.first(": wrote "), "count checks done": run.last("count check:"),
             "job summary logged": run.first("rows read "), "exit": run.wall_s}
    phases, previous = {}, 0.0
    for name, t in marks.items():
        if t is not None:
            phases[name] = round(t - previous, 2)
            previous = t
    staged = next((line.split(": staged ", 1)[1] for _, line in run.lines if ": staged " in line), "")
    # the write stage's own seconds sit inside "write done": what is left of it is the tables' preparation
    # and the Spark session's start
    phases["of which write stage"] = job["write_seconds"]
    for name, seconds in phases.items():
        log.info("one-off ingest job: %-24s %6.2fs", name, seconds)
    if staged:
        log.info("one-off ingest job: write stage = staged %s", staged)
    return {"rows_per_s_cold_job": round(rows / run.wall_s), "rows_per_s_cold_job_write_stage": job["rows_per_s"],
            "job_wall_s": round(run.wall_s, 2), "job_phases_s": phases, "job_write_breakdown": staged,
            "job_peak_rss_mb": run.peak_rss_mb}


def main(argv=None) -> int:
    setup_logging()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keyspace", default="bench_ingest", help="the bench's own keyspace (dropped and re-created)")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--original-rows", type=int, default=3000, help="rows loaded the original way")
    p.add_argument("--passes", type=int, default=8, help="warm passes into emptied tables (their median counts)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--ring", action="store_true",
                   help="into the 3-node ring (DIGITFORGE_CASSANDRA=ring): `stream` and `cql` side by side")
    p.add_argument("--no-job", action="store_true", help="skip the one-off spark-submit ingest")
    p.add_argument("--writers", nargs="+", choices=["stream", "cql"], default=["stream", "cql"],
                   help="with --ring: the writers to time (both, for the ratio)")
    args = p.parse_args(argv)
    if args.ring:
        return ring_main(args)
    cfg = config.resolve(args.set)
    icfg, ks = cfg["ingest"], args.keyspace
    if ks in {d["keyspace"] for d in cfg["datasets"].values()}:
        raise SystemExit(f"refusing to drop {ks}: it is a dataset's keyspace")

    started = time.time()
    batches = sources.from_idx(dataset_folder(args.dataset, config.dataset_info(cfg, args.dataset)["folder"]))
    read_s = time.time() - started
    rows = sum(len(b) for b in batches)
    log.info("read and checked %d rows in %.2fs", rows, read_s)

    with session(cfg) as s:
        s.execute(f"DROP KEYSPACE IF EXISTS {ks}")
    apply_schema(cfg, [ks])
    train = batches[0]
    original = original_loader(cfg, ks, train.images, train.labels, args.original_rows)
    log.info("original loader: %d rows at %.0f rows/s", args.original_rows, original)

    t = time.time()
    spark = get_spark("digitforge-bench-ingest", cfg)
    spark.range(1).count()  # Spark starts its executor and scheduler on the first job: count that as start-up
    spark_s = time.time() - t

    def write_pass(name: str, empty_first: bool) -> dict:
        if empty_first:
            with session(cfg, ks) as s:
                for b in batches:
                    s.execute(f"TRUNCATE {b.table}")
            time.sleep(1)  # the node's own truncation work is not part of the next write
        t = time.time()
        reports, write_s = write_and_check(spark, cfg, batches, ks)
        found = sum(r["found"] for r in reports)
        if found != rows:
            raise RuntimeError(f"{name}: expected {rows} rows, found {found}")
        log.info("pass %s: %d rows written in %.2fs (%.0f rows/s)", name, rows, write_s, rows / write_s)
        return {"pass": name, "write_s": round(write_s, 3), "rows_per_s": round(rows / write_s),
                "with_count_checks_s": round(time.time() - t, 2), "found": found, "writer": reports[0]["writer"]}

    cold = write_pass("cold JVM, empty tables", empty_first=False)
    warm = [write_pass(f"warm {i + 1}, emptied tables", empty_first=True) for i in range(args.passes)]
    again = write_pass("warm, same rows again", empty_first=False)
    spark.stop()

    job = {} if args.no_job else one_off_job(cfg, args.dataset, f"{ks}_job", rows, args.set)
    steady = sorted(warm, key=lambda p: p["write_s"])[len(warm) // 2]  # the median pass
    result = {
        "rows": rows, "writer": cold["writer"], "rows_per_s": steady["rows_per_s"],
        "original_rows_per_s": round(original, 1), "ratio": round(steady["rows_per_s"] / original, 1),
        "rows_per_s_cold": cold["rows_per_s"], "ratio_cold": round(cold["rows_per_s"] / original, 1),
        "write_s": steady["write_s"], "write_s_cold": cold["write_s"],
        "startup_s": round(cold["write_s"] - steady["write_s"], 2),
        "rows_per_s_warm_passes": [p["rows_per_s"] for p in warm], "rows_per_s_same_rows_again": again["rows_per_s"],
        "read_check_s": round(read_s, 2), "spark_start_s": round(spark_s, 2),
        "count_checks_s": round(cold["with_count_checks_s"] - cold["write_s"], 2),
        "end_to_end_rows_per_s_cold": round(rows / (read_s + spark_s + cold["with_count_checks_s"])),
        "original_rows": args.original_rows, "mode": "in-process (get_spark, local profile)",
        **job, "ratio_cold_job_write_stage": round(job["rows_per_s_cold_job_write_stage"] / original, 1) if job else None,
        "cpu_model": cpu_model(), "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
        "settings": {k: icfg[k] for k in ("writer", "write_partitions", "batch_grouping_key", "batch_size_bytes",
                                          "concurrent_writes")},
    }
    passes = [cold, *warm, again]
    print(f"{'method':<48}{'rows':>8}{'seconds':>10}{'rows/s':>10}{'x original':>12}")
    print(f"{'original: INSERT ... JSON per row, list<int>':<48}{args.original_rows:>8}"
          f"{args.original_rows / original:>10.2f}{original:>10.0f}{1:>12.1f}")
    for ps in passes:
        print(f"{'ingest write stage (' + ps['pass'] + ')':<48}{rows:>8}{ps['write_s']:>10.2f}"
              f"{ps['rows_per_s']:>10}{ps['rows_per_s'] / original:>12.1f}")
    print(f"write stage throughput (median warm pass, writer {result['writer']}): {result['rows_per_s']} rows/s = "
          f"{result['ratio']}x the original; cold JVM: {result['rows_per_s_cold']} rows/s = {result['ratio_cold']}x "
          f"(one-off start-up {result['startup_s']}s)")
    print(f"(cold pass end to end: read+check IDX {read_s:.2f}s + Spark start {spark_s:.2f}s + write "
          f"{cold['write_s']:.2f}s + count checks (ids before and after) {result['count_checks_s']:.2f}s = "
          f"{result['end_to_end_rows_per_s_cold']} rows/s; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f})")
    if job:
        print(f"one-off spark-submit ingest (cold): {job['rows_per_s_cold_job']} rows/s end to end "
              f"({job['job_wall_s']}s), write stage {job['rows_per_s_cold_job_write_stage']} rows/s = "
              f"{result['ratio_cold_job_write_stage']}x the original; phases {job['job_phases_s']}")
    print(f"[{cpu_model()} x {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}]")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
