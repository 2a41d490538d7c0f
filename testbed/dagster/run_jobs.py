"""Run the sample jobs of the `lineage_sample` code location so that Dagster's event log fills up.

Runs go through GraphQL `launchRun`, so they are QUEUED and launched by dagster-daemon (the
QueuedRunCoordinator), exactly like runs started from the UI. Then runless events are reported
through the webserver's external-asset REST endpoints. Finally the script waits for every run to
finish, prints a summary and exits 1 if an expected outcome did not happen.

Expected outcomes:
  ingest_raw_job                      SUCCESS   (raw/payments fails once and is retried)
  transform_job                       SUCCESS   (launched after ingest_raw_job; 1 of 3 checks fails)
  daily_events_job x3 partitions      SUCCESS
  broken_feed_job                     FAILURE
  slow_rebuild_job                    CANCELED  (terminated by this script once its step runs)

Usage (normally through run_jobs.sh, which passes the testbed's ports):
  python run_jobs.py --url http://127.0.0.1:13000 --pg-dsn postgresql://lineage:lineage@127.0.0.1:15432/dagster
"""

import argparse
import sys
import time
from collections import Counter

import psycopg2
import requests

LOCATION = "lineage_sample"
REPOSITORY = "__repository__"
PARTITIONS = ["2024-01-01", "2024-01-02", "2024-01-03"]
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}"""

RUNS = """
query Runs($ids: [String!]) {
  runsOrError(filter: {runIds: $ids}) {
    __typename
    ... on Runs { results { runId jobName status tags { key value } } }
    ... on PythonError { message }
  }
}"""

TERMINATE = """
mutation Terminate($runId: String!) {
  terminateRun(runId: $runId) {
    __typename
    ... on TerminateRunSuccess { run { runId status } }
    ... on TerminateRunFailure { message }
    ... on PythonError { message }
    ... on Error { message }
  }
}"""

STEP_STARTED = """
query Logs($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection { events { __typename } }
  }
}"""


class Dagster:
    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.http = requests.Session()

    def gql(self, query: str, **variables):
        resp = self.http.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=60
        )
        resp.raise_for_status()
        body = resp.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def launch(self, job: str, tags: dict[str, str] | None = None) -> str:
        params = {
            "selector": {
                "repositoryLocationName": LOCATION,
                "repositoryName": REPOSITORY,
                "jobName": job,
            },
            "runConfigData": {},
            "executionMetadata": {
                "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]
            },
        }
        result = self.gql(LAUNCH, params=params)["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"launching {job} failed: {result}")
        run_id = result["run"]["runId"]
        print(f"launched {job:<18} {run_id} {tags or ''}", flush=True)
        return run_id

    def runs(self, run_ids: list[str]) -> dict[str, dict]:
        result = self.gql(RUNS, ids=run_ids)["runsOrError"]
        if result["__typename"] != "Runs":
            raise RuntimeError(f"runsOrError: {result}")
        return {r["runId"]: r for r in result["results"]}

    def wait(self, run_ids: list[str], timeout: float, until=TERMINAL) -> dict[str, dict]:
        deadline = time.monotonic() + timeout
        while True:
            runs = self.runs(run_ids)
            if all(runs.get(i, {}).get("status") in until for i in run_ids):
                return runs
            if time.monotonic() > deadline:
                pending = {i: runs.get(i, {}).get("status") for i in run_ids}
                raise TimeoutError(f"runs not in {sorted(until)} after {timeout}s: {pending}")
            time.sleep(1)

    def step_started(self, run_id: str) -> bool:
        result = self.gql(STEP_STARTED, runId=run_id)["logsForRun"]
        return any(e["__typename"] == "ExecutionStepStartEvent" for e in result.get("events", []))

    def terminate(self, run_id: str) -> None:
        result = self.gql(TERMINATE, runId=run_id)["terminateRun"]
        if result["__typename"] != "TerminateRunSuccess":
            raise RuntimeError(f"terminating {run_id} failed: {result}")
        print(f"terminate requested   {run_id}", flush=True)

    def report(self, kind: str, key: list[str], body: dict) -> None:
        url = f"{self.url}/report_asset_{kind}/{'/'.join(key)}"
        resp = self.http.post(url, json=body, timeout=30)  # Content-Type: application/json
        if resp.status_code != 200:
            raise RuntimeError(f"POST {url} -> {resp.status_code} {resp.text}")
        print(f"reported {kind:<15} {'/'.join(key)} {body.get('check_name', '')}", flush=True)


def report_runless_events(dg: Dagster) -> int:
    """External-asset REST endpoints: stored as runless events (run_id '')."""
    source = ["warehouse_db", "raw", "events_source"]
    calls = [
        ("materialization", source, {
            "description": "nightly load by the external ingestion service",
            "data_version": "2024-01-03T00:00:00Z",
            "metadata": {"dagster/row_count": 50210, "loader": "ingest-svc", "lag_seconds": 12.5},
        }),
        ("materialization", source, {
            "partition": "2024-01-03",
            "metadata": {"dagster/row_count": 1731, "dagster/table_name": "warehouse_db.raw.events_source"},
        }),
        ("observation", source, {"metadata": {"last_event_ts": "2024-01-03T23:59:58Z"}}),
        ("check", source, {"check_name": "events_fresh", "passed": True,
                           "metadata": {"lag_minutes": 4}}),
        ("check", source, {"check_name": "events_have_no_orphans", "passed": False,
                           "severity": "WARN", "metadata": {"orphan_rows": 3}}),
        ("materialization", ["vendor_api", "orders_endpoint"], {
            "metadata": {"http_status": 200, "records": 88},
        }),
    ]
    for kind, key, body in calls:
        dg.report(kind, key, body)
    return len(calls)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:13000")
    ap.add_argument("--pg-dsn", default="postgresql://lineage:lineage@127.0.0.1:15432/dagster")
    ap.add_argument("--timeout", type=float, default=300, help="seconds to wait for the runs")
    args = ap.parse_args()

    started = time.monotonic()
    dg = Dagster(args.url)
    print(f"dagster {dg.gql('{ version }')['version']} at {args.url}")

    expected: dict[str, str] = {}  # run id -> expected terminal status

    def launch(job, expect, tags=None):
        run_id = dg.launch(job, tags)
        expected[run_id] = expect
        return run_id

    ingest = launch("ingest_raw_job", "SUCCESS")
    slow = launch("slow_rebuild_job", "CANCELED")
    launch("broken_feed_job", "FAILURE")
    for day in PARTITIONS:
        launch("daily_events_job", "SUCCESS", {"dagster/partition": day})

    runless = report_runless_events(dg)

    # Cancel the slow run once its step is executing.
    deadline = time.monotonic() + args.timeout
    while not dg.step_started(slow):
        if time.monotonic() > deadline:
            raise TimeoutError("slow_rebuild_job never started its step")
        time.sleep(1)
    time.sleep(2)
    dg.terminate(slow)

    # Job B only after job A has produced the raw tables it depends on.
    dg.wait([ingest], args.timeout)
    launch("transform_job", "SUCCESS")

    runs = dg.wait(list(expected), args.timeout)
    elapsed = time.monotonic() - started

    print(f"\nruns ({elapsed:.0f}s):")
    failures = []
    for run_id, want in expected.items():
        run = runs[run_id]
        tags = {t["key"]: t["value"] for t in run["tags"]}
        part = tags.get("dagster/partition", "")
        ok = run["status"] == want
        if not ok:
            failures.append(f"{run['jobName']} {run_id}: {run['status']}, expected {want}")
        print(f"  {run['jobName']:<18} {part:<10} {run['status']:<9} {'ok' if ok else 'UNEXPECTED (want ' + want + ')'}  {run_id}")
    print("runs by status:", dict(Counter(r["status"] for r in runs.values())))

    with psycopg2.connect(args.pg_dsn) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from event_logs")
        total = cur.fetchone()[0]
        cur.execute(
            "select coalesce(dagster_event_type, '(log line)'), count(*) from event_logs"
            " where run_id = any(%s) group by 1 order by 2 desc, 1",
            (list(expected),),
        )
        by_type = dict(cur.fetchall())
        cur.execute(
            "select coalesce(dagster_event_type, '(log line)'), count(*) from event_logs"
            " where run_id = '' group by 1 order by 1"
        )
        runless_by_type = dict(cur.fetchall())
    print(f"event_logs rows in total: {total}")
    print("events of these runs by dagster_event_type:")
    for t, n in by_type.items():
        print(f"  {t:<32} {n}")
    print(f"runless events (run_id '') in total, {runless} reported now:", runless_by_type)

    required = [
        "ASSET_MATERIALIZATION", "ASSET_MATERIALIZATION_PLANNED", "ASSET_CHECK_EVALUATION",
        "STEP_FAILURE", "STEP_UP_FOR_RETRY", "STEP_RESTARTED", "PIPELINE_SUCCESS",
        "PIPELINE_FAILURE", "PIPELINE_CANCELED",
    ]
    failures += [f"no {t} event in these runs" for t in required if not by_type.get(t)]
    if not runless_by_type.get("ASSET_MATERIALIZATION"):
        failures.append("no runless ASSET_MATERIALIZATION")
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        return 1
    print("\nall expected outcomes happened")
    return 0


if __name__ == "__main__":
    sys.exit(main())
