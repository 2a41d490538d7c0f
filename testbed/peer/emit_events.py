"""The peer's OpenLineage output for the testbed's Dagster event log, as JSON lines on stdout.

Runs dagster-openlineage 0.2.1's own sensor (Mechanism B, `include_asset_events=True`, the mode
that sees run tags and handles every asset event) tick after tick, as the Dagster daemon would,
on a DagsterInstance over the testbed's PostgreSQL storage, until its cursor reaches
`--max-storage-id`. The sensor's adapter emits through a capturing emitter instead of HTTP; each
captured event is written as the OpenLineage client serializes it (`Serde.to_json`).

Usage (in testbed/.venv-peer, see testbed/peer/setup.sh):
  python emit_events.py --pg-dsn postgresql://u:p@127.0.0.1:15432/dagster --max-storage-id N
      [--skip-ids 7,9]  (rows left out: the ones lineage-bus's producer dead-letters)

`--input FILE --bench` instead times the peer's converter (the adapter's event → OpenLineage
functions, as the sensor calls them) on the events of FILE (JSON lines written by the
processor_throughput load test) and prints one JSON line `{"events": n, "emitted": m,
"seconds": s}`: no database, no HTTP.
"""

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from urllib.parse import urlparse

# Same default namespace as lineage-bus (`[process] namespace = "dagster"`); the adapter reads it
# at import.
os.environ.setdefault("OPENLINEAGE_NAMESPACE", "dagster")
os.environ.pop("OPENLINEAGE_URL", None)

import dagster_openlineage.sensor as peer_sensor  # noqa: E402
from dagster_openlineage.adapter import OpenLineageAdapter  # noqa: E402
from openlineage.client.serde import Serde  # noqa: E402


class CapturingEmitter:
    """Stands in for the peer's HTTP emitter: keeps every event."""

    def __init__(self):
        self.events = []

    def emit(self, event):
        self.events.append(event)


class CountingEmitter:
    """Serializes each event (what the HTTP transport would do first) and counts it."""

    def __init__(self):
        self.count = 0

    def emit(self, event):
        Serde.to_json(event)
        self.count += 1


def instance_over(dsn):
    """A DagsterInstance whose storage is the PostgreSQL database at `dsn` (read only here)."""
    from dagster import DagsterInstance

    url = urlparse(dsn)
    home = tempfile.mkdtemp(prefix="peer-dagster-home-")
    with open(os.path.join(home, "dagster.yaml"), "w", encoding="utf-8") as f:
        f.write(
            "storage:\n  postgres:\n    postgres_db:\n"
            f"      hostname: {url.hostname}\n      port: {url.port or 5432}\n"
            f"      username: {url.username}\n      password: {url.password}\n"
            f"      db_name: {url.path.lstrip('/')}\n      scheme: postgresql+psycopg2\n"
            "telemetry:\n  enabled: false\n"
        )
    return DagsterInstance.from_config(home)


class SensorLog(logging.Handler):
    """Keeps the sensor's last "failed with error" message."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.error = None

    def emit(self, record):
        message = record.getMessage()
        if message.startswith("Sensor run failed with error: "):
            self.error = message[len("Sensor run failed with error: "):].split(". Last cursor")[0]


def run_sensor(dsn, max_storage_id, skip_ids):
    """Ticks the sensor until its cursor reaches the bound; prints its events.

    The sensor stops for good at a record its conversion raises on (its cursor stays before it,
    every later tick fails on it again): the daemon would emit nothing more. To compare the rest
    of the log, such a record is reported as a line `{"peerError": ..., "storageId": ...,
    "dagsterEventType": ..., "runId": ...}` and the cursor is moved past it.
    """
    from dagster import build_sensor_context
    from dagster_openlineage.cursor import OpenLineageCursor

    emitter = CapturingEmitter()
    peer_sensor._ADAPTER = OpenLineageAdapter(emitter=emitter)
    fetch = peer_sensor.get_event_log_records
    concerned = {}

    def bounded(instance, event_types, last_storage_id, limit):
        # the same snapshot of the log as lineage-bus reads: storage ids up to the bound
        concerned["types"] = event_types
        return [r for r in fetch(instance, event_types, last_storage_id, limit)
                if r.storage_id <= max_storage_id and r.storage_id not in skip_ids]

    peer_sensor.get_event_log_records = bounded
    sensor_log = SensorLog()
    logging.getLogger("dagster_openlineage.sensor").addHandler(sensor_log)
    logging.getLogger("dagster_openlineage.sensor").setLevel(logging.INFO)
    sensor = peer_sensor.openlineage_sensor(include_asset_events=True, record_filter_limit=1_000_000)
    cursor = None
    with instance_over(dsn) as instance:
        for _ in range(10_000):
            sensor_log.error = None
            context = build_sensor_context(instance=instance, cursor=cursor)
            list(sensor(context) or [])
            before = OpenLineageCursor.from_json(cursor).last_storage_id if cursor else 0
            cursor = context.cursor
            state = OpenLineageCursor.from_json(cursor)
            if sensor_log.error is None:
                if state.last_storage_id == before:
                    break
                continue
            stuck = bounded(instance, concerned["types"], state.last_storage_id, 1_000_000)
            if not stuck:
                break
            record = stuck[0]
            entry = record.event_log_entry
            flush(emitter)
            sys.stdout.write(json.dumps({
                "peerError": sensor_log.error,
                "storageId": record.storage_id,
                "dagsterEventType": entry.dagster_event.event_type_value,
                "runId": entry.run_id,
            }) + "\n")
            state.last_storage_id = record.storage_id
            cursor = state.to_json()
    flush(emitter)


def flush(emitter):
    for event in emitter.events:
        sys.stdout.write(Serde.to_json(event) + "\n")
    emitter.events.clear()


def bench(path):
    """Times the peer's conversion of the events in `path` (one JSON object a line).

    Each event goes through what the sensor does with it after reading it from storage: the
    sensor's own pipeline and step handlers, and for asset events the adapter calls its asset
    handler makes (with the planned-asset bookkeeping and the run-end drain). The Dagster
    objects the handlers receive are built before the clock starts, as the sensor gets them
    deserialized from storage. Every emitted event is serialized as the HTTP transport would.
    """
    from dagster import (AssetCheckEvaluation, AssetCheckSeverity, AssetKey, DagsterEventType,
                         MetadataValue, TableColumn, TableColumnDep, TableColumnLineage,
                         TableSchema)
    from dagster_openlineage.cursor import RunningPipeline

    emitter = CountingEmitter()
    adapter = OpenLineageAdapter(emitter=emitter)
    peer_sensor._ADAPTER = adapter
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]

    def metadata_of(row):
        out = {}
        for entry in row.get("metadata", []):
            if entry["kind"] == "schema":
                out[entry["key"]] = MetadataValue.table_schema(TableSchema(columns=[
                    TableColumn(name=c, type="bigint") for c in entry["columns"]]))
            elif entry["kind"] == "lineage":
                out[entry["key"]] = MetadataValue.column_lineage(TableColumnLineage(deps_by_column={
                    c: [TableColumnDep(asset_key=AssetKey(d["asset"]), column_name=d["column"])]
                    for c, d in entry["deps"].items()}))
            else:
                out[entry["key"]] = MetadataValue.int(entry["value"])
        return out

    prepared = []
    for row in rows:
        key = AssetKey(row["asset"]) if row.get("asset") else None
        extra = None
        if row["type"] in ("ASSET_MATERIALIZATION", "ASSET_OBSERVATION"):
            extra = metadata_of(row)
        elif row["type"] == "ASSET_CHECK_EVALUATION":
            extra = AssetCheckEvaluation(
                asset_key=key, check_name=row["check"], passed=bool(row["passed"]),
                metadata={}, severity=AssetCheckSeverity.ERROR)
        event_type = getattr(DagsterEventType, row["type"], None)
        prepared.append((row, event_type, key, extra))

    pipeline = set(peer_sensor.PIPELINE_EVENTS)
    step = set(peer_sensor.STEP_EVENTS)
    terminal = peer_sensor._RUN_TERMINATION_TYPES
    running = {}
    started = time.perf_counter()
    for row, event_type, key, extra in prepared:
        run, at = row.get("run") or "", row["timestamp"]
        job, step_key = row.get("job") or "", row.get("step")
        kind = row["type"]
        if kind in ("ASSET_MATERIALIZATION_PLANNED", "ASSET_MATERIALIZATION",
                    "ASSET_OBSERVATION", "ASSET_CHECK_EVALUATION_PLANNED",
                    "ASSET_CHECK_EVALUATION"):
            state = running.pop(run, None) or RunningPipeline()
            running[run] = state
            if kind == "ASSET_MATERIALIZATION_PLANNED":
                state.planned_asset_paths.add(tuple(key.path))
                adapter.asset_materialization_planned(key, run, at)
            elif kind == "ASSET_MATERIALIZATION":
                state.planned_asset_paths.discard(tuple(key.path))
                adapter.asset_materialization(key, run, at, metadata=extra,
                                              partition_key=row.get("partition"))
            elif kind == "ASSET_OBSERVATION":
                adapter.asset_observation(key, run, at, metadata=extra)
            elif kind == "ASSET_CHECK_EVALUATION_PLANNED":
                adapter.asset_check_evaluation_planned(key, check_name=row["check"], run_id=run,
                                                       timestamp=at, standalone=True)
            else:
                adapter.asset_check_evaluation(key, [extra], run_id=run, timestamp=at)
        elif event_type in pipeline:
            if event_type in terminal:
                peer_sensor._drain_planned_as_failures(running, run, at, terminal=False)
            peer_sensor._handle_pipeline_event(running, event_type, job, run, at,
                                               "__repository__")
        elif event_type in step and step_key:
            peer_sensor._handle_step_event(running, event_type, job, run, at, step_key,
                                           "__repository__")
    seconds = time.perf_counter() - started
    print(json.dumps({"events": len(prepared), "emitted": emitter.count, "seconds": seconds}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-dsn")
    parser.add_argument("--max-storage-id", type=int)
    parser.add_argument("--skip-ids", default="",
                        help="storage ids left out of the snapshot, comma separated")
    parser.add_argument("--input")
    parser.add_argument("--bench", action="store_true")
    args = parser.parse_args()
    if args.bench:
        if not args.input:
            parser.error("--bench needs --input")
        bench(args.input)
    else:
        if not args.pg_dsn or args.max_storage_id is None:
            parser.error("--pg-dsn and --max-storage-id are required")
        skip = {int(i) for i in args.skip_ids.split(",") if i}
        run_sensor(args.pg_dsn, args.max_storage_id, skip)


if __name__ == "__main__":
    main()
