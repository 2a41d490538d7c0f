"""Run the sample jobs of `lineage_sample` against a Dagster instance with SQLite storage.

The instance lives in its own DAGSTER_HOME (no webserver, no daemon, no PostgreSQL): its
dagster.yaml has no storage section, so Dagster uses its DEFAULT storage, run-sharded SQLite
(`history/runs/<run_id>.db` per run, `history/runs/.db` for runless events, `history/runs/index.db`
mirroring asset, check and run-status events, `history/runs.db` for runs). With
`--layout consolidated` the event log is ConsolidatedSqliteEventLogStorage instead: one
`history/runs/event_log.db`.

Runs are executed by the `dagster` CLI of this venv, one process per run, like a user would:
  ingest_raw_job                      SUCCESS   (raw/payments fails once and is retried)
  transform_job                       SUCCESS   (1 of 3 checks fails)
  daily_events_job x3 partitions      SUCCESS   (`job execute --tags` and `asset materialize --partition`)
  broken_feed_job                     FAILURE
  slow_rebuild_job                    CANCELED  (run marked CANCELING, then its process interrupted)
then runless events are reported through DagsterInstance.report_runless_asset_event
(materializations, an observation, passing and failing checks). Prints a summary and exits 1 if
an expected outcome did not happen. `--repeat N` runs the whole set N times (more runs, more shards).

Usage (normally through run_jobs_sqlite.sh, which picks the testbed venv):
  python run_jobs_sqlite.py --home /tmp/dagster-home [--layout run-sharded|consolidated] [--repeat N]
"""

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE / "sample_project"
DEFINITIONS = "lineage_sample/definitions.py"
PARTITIONS = ["2024-01-01", "2024-01-02", "2024-01-03"]

CONSOLIDATED = """
event_log_storage:
  module: dagster._core.storage.event_log
  class: ConsolidatedSqliteEventLogStorage
  config:
    base_dir: {base_dir}
"""


def write_instance(home: Path, layout: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    config = "telemetry:\n  enabled: false\nnux:\n  enabled: false\n"
    if layout == "consolidated":
        config += CONSOLIDATED.format(base_dir=home / "history" / "runs")
    (home / "dagster.yaml").write_text(config)


def dagster(env: dict, *args: str) -> subprocess.Popen:
    cmd = [str(Path(sys.executable).parent / "dagster"), *args, "-f", DEFINITIONS, "-d", str(PROJECT)]
    return subprocess.Popen(cmd, env=env, cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def run(env: dict, label: str, *args: str) -> int:
    proc = dagster(env, *args)
    _, err = proc.communicate()
    print(f"{label:<34} exit {proc.returncode}", flush=True)
    if proc.returncode not in (0, 1):
        print(err[-2000:], file=sys.stderr)
    return proc.returncode


def cancel_slow_run(env: dict, instance) -> None:
    """slow_rebuild_job: wait for its step to start, mark the run CANCELING (what Dagster's run
    launcher does on terminate), then interrupt its process, which then reports RUN_CANCELED."""
    from dagster import DagsterEventType, RunsFilter

    known = {r.run_id for r in instance.get_runs(RunsFilter(job_name="slow_rebuild_job"))}
    proc = dagster(env, "job", "execute", "-j", "slow_rebuild_job")
    deadline = time.monotonic() + 120
    while True:
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError("slow_rebuild_job never started its step")
        runs = [r for r in instance.get_runs(RunsFilter(job_name="slow_rebuild_job")) if r.run_id not in known]
        if runs:
            records = instance.get_records_for_run(runs[0].run_id, of_type=DagsterEventType.STEP_START).records
            if records:
                break
        time.sleep(0.5)
    time.sleep(1)
    instance.report_run_canceling(runs[0], message="canceled by run_jobs_sqlite.py")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    print(f"{'slow_rebuild_job (canceled)':<34} exit {proc.returncode}", flush=True)


def report_runless_events(instance) -> int:
    from dagster import AssetCheckEvaluation, AssetCheckSeverity, AssetKey, AssetMaterialization, AssetObservation

    source = AssetKey(["warehouse_db", "raw", "events_source"])
    events = [
        AssetMaterialization(source, description="nightly load by the external ingestion service",
                             metadata={"dagster/row_count": 50210, "loader": "ingest-svc", "lag_seconds": 12.5}),
        AssetMaterialization(source, partition="2024-01-03",
                             metadata={"dagster/row_count": 1731, "dagster/table_name": "warehouse_db.raw.events_source"}),
        AssetObservation(source, metadata={"last_event_ts": "2024-01-03T23:59:58Z"}),
        AssetCheckEvaluation(asset_key=source, check_name="events_fresh", passed=True, metadata={"lag_minutes": 4}),
        AssetCheckEvaluation(asset_key=source, check_name="events_have_no_orphans", passed=False,
                             severity=AssetCheckSeverity.WARN, metadata={"orphan_rows": 3}),
        AssetMaterialization(AssetKey(["vendor_api", "orders_endpoint"]), metadata={"http_status": 200, "records": 88}),
    ]
    for event in events:
        instance.report_runless_asset_event(event)
    print(f"{'runless events reported':<34} {len(events)}", flush=True)
    return len(events)


def event_log_rows(home: Path, layout: str) -> dict[str, list[tuple]]:
    """(id, dagster_event_type) of every event-log row, by shard file."""
    runs_dir = home / "history" / "runs"
    files = [runs_dir / "event_log.db"] if layout == "consolidated" else [
        p for p in runs_dir.glob("*.db") if p.name != "index.db"] + ([runs_dir / ".db"] if (runs_dir / ".db").exists() else [])
    shards = {}
    for path in sorted(set(files)):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            shards[path.name] = conn.execute("select id, dagster_event_type, run_id from event_logs order by id").fetchall()
    return shards


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", required=True, help="DAGSTER_HOME to create or reuse")
    ap.add_argument("--layout", choices=["run-sharded", "consolidated"], default="run-sharded")
    ap.add_argument("--repeat", type=int, default=1, help="run the whole set this many times")
    args = ap.parse_args()

    home = Path(args.home).resolve()
    write_instance(home, args.layout)
    env = dict(os.environ, DAGSTER_HOME=str(home))
    os.environ["DAGSTER_HOME"] = str(home)
    from dagster import DagsterInstance, DagsterRunStatus

    instance = DagsterInstance.get()
    started = time.monotonic()
    for _ in range(args.repeat):
        run(env, "ingest_raw_job", "job", "execute", "-j", "ingest_raw_job")
        run(env, "broken_feed_job", "job", "execute", "-j", "broken_feed_job")
        run(env, f"daily_events_job {PARTITIONS[0]}", "job", "execute", "-j", "daily_events_job",
            "--tags", json.dumps({"dagster/partition": PARTITIONS[0]}))
        for day in PARTITIONS[1:]:
            run(env, f"events_daily {day}", "asset", "materialize", "--select", "warehouse_db/staging/events_daily", "--partition", day)
        run(env, "transform_job", "job", "execute", "-j", "transform_job")
        cancel_slow_run(env, instance)
        report_runless_events(instance)

    runs = instance.get_runs()
    by_job_status = Counter((r.job_name, r.status.value) for r in runs)
    print(f"\nruns ({time.monotonic() - started:.0f}s), by job and status:")
    for (job, status), n in sorted(by_job_status.items()):
        print(f"  {job:<24} {status:<9} {n}")
    shards = event_log_rows(home, args.layout)
    types = Counter(t or "(log line)" for rows in shards.values() for _, t, _ in rows)
    total = sum(len(rows) for rows in shards.values())
    print(f"event-log rows: {total} in {len(shards)} shard file(s) ({args.layout})")
    for t, n in sorted(types.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {t:<32} {n}")
    runless = sum(1 for rows in shards.values() for _, _, run_id in rows if run_id == "")
    print(f"runless events (run_id ''): {runless}")

    failures = []
    repeat = args.repeat
    for job, status, n in [
        ("ingest_raw_job", DagsterRunStatus.SUCCESS, repeat),
        ("transform_job", DagsterRunStatus.SUCCESS, repeat),
        ("daily_events_job", DagsterRunStatus.SUCCESS, repeat),  # `job execute --tags`
        ("broken_feed_job", DagsterRunStatus.FAILURE, repeat),
        ("slow_rebuild_job", DagsterRunStatus.CANCELED, repeat),
    ]:
        if by_job_status[(job, status.value)] < n:
            failures.append(f"{job}: fewer than {n} {status.value} runs")
    partitioned = [r for r in runs if r.tags.get("dagster/partition") and r.status == DagsterRunStatus.SUCCESS]
    if len(partitioned) < len(PARTITIONS) * repeat:
        failures.append(f"only {len(partitioned)} successful partitioned runs")
    required = [
        "ASSET_MATERIALIZATION", "ASSET_MATERIALIZATION_PLANNED", "ASSET_CHECK_EVALUATION", "ASSET_OBSERVATION",
        "STEP_FAILURE", "STEP_UP_FOR_RETRY", "STEP_RESTARTED", "PIPELINE_SUCCESS", "PIPELINE_FAILURE",
        "PIPELINE_CANCELING", "PIPELINE_CANCELED",
    ]
    failures += [f"no {t} event" for t in required if not types.get(t)]
    if runless < 6 * repeat:
        failures.append(f"only {runless} runless events")
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        return 1
    print("\nall expected outcomes happened")
    return 0


if __name__ == "__main__":
    sys.exit(main())
