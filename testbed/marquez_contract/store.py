"""In-memory Marquez model, rebuilt at start-up from an append-only JSON-lines journal.

The journal (one file per Marquez "database") holds one `{"init": ...}` line and then one line per
accepted event, in the order the server processed them: replaying it reproduces the same state, so
the state survives a restart. Deleting the file while the server is stopped is the equivalent of
dropping Marquez's database. An exclusive lock keeps two servers from sharing one journal.

Semantics follow Marquez (api/src/main/java/marquez/db/OpenLineageDao.java and friends):
- namespaces are upserted from the job namespace and every dataset namespace (owner "anonymous"),
  with invalid characters replaced by "_"; the "default" namespace exists from the first start;
- createdAt/updatedAt come from the events' eventTime, as Marquez does;
- a run keeps whatever state the event processed last gave it (START/RUNNING -> RUNNING,
  COMPLETE -> COMPLETED, FAIL -> FAILED, ABORT -> ABORTED, OTHER or no eventType keeps it);
- a batch job's inputs/outputs (its current version) are the cumulative inputs/outputs of a run
  when that run reaches COMPLETED/FAILED/ABORTED; a streaming job's on every event with datasets;
  a JobEvent sets them directly (runless job version);
- with a `parent` run facet the job is stored as `<parent job>.<simple name>` (the simple name is
  the event's job name without a `<parent job>.` prefix) and the parent job/run are created when
  unknown (the parent job in the child's namespace, as Marquez does);
- duplicates are kept: every accepted event is journaled and listed by /api/v1/events/lineage.
"""
from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import uuid
from datetime import datetime, timezone

import orjson

log = logging.getLogger("marquez_contract")

DEFAULT_NAMESPACE = "default"
DEFAULT_NAMESPACE_DESCRIPTION = (
    "The default global namespace for dataset, job, and run metadata not belonging to a "
    "user-specified namespace."
)
OWNER = "anonymous"
STATE_OF = {"START": "RUNNING", "RUNNING": "RUNNING", "COMPLETE": "COMPLETED", "FAIL": "FAILED", "ABORT": "ABORTED"}
DONE = {"COMPLETED", "FAILED", "ABORTED"}
_NS_BAD = re.compile(r"[^a-z:/A-Z0-9\-_.@+]")
_FRACTION = re.compile(r"(\.\d{6})\d+")
_UUID_NS = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")  # RFC 4122 URL namespace


def fmt_namespace(ns: str) -> str:
    return _NS_BAD.sub("_", ns)


def parse_time(s: str) -> datetime:
    s = _FRACTION.sub(r"\1", s)  # Python keeps microseconds; nanoseconds are cut
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def iso(dt: datetime | None) -> str | None:
    """java.time.Instant#toString style: UTC, `Z`, 0/3/6 fraction digits."""
    if dt is None:
        return None
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    us = dt.microsecond
    if us == 0:
        return base + "Z"
    if us % 1000 == 0:
        return f"{base}.{us // 1000:03d}Z"
    return f"{base}.{us:06d}Z"


def name_uuid(*parts: str) -> str:
    return str(uuid.uuid5(_UUID_NS, "\x1f".join(parts)))


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


class Namespace:
    __slots__ = ("name", "created_at", "updated_at", "owner", "description")

    def __init__(self, name, t, description=None):
        self.name, self.created_at, self.updated_at = name, t, t
        self.owner, self.description = OWNER, description

    def json(self):
        return {
            "name": self.name,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "ownerName": self.owner,
            "description": self.description,
            "isHidden": False,
        }


class Dataset:
    __slots__ = ("ns", "name", "created_at", "updated_at", "type", "source_name", "fields", "description",
                 "facets", "last_modified_at", "lifecycle", "current_version", "deleted", "column_lineage")

    def __init__(self, ns, name, t):
        self.ns, self.name, self.created_at, self.updated_at = ns, name, t, t
        self.type, self.source_name, self.fields, self.description = "DB_TABLE", "default", [], None
        self.facets: dict = {}
        self.last_modified_at = None
        self.lifecycle = None
        self.current_version = None
        self.deleted = False
        self.column_lineage = None

    def id(self):
        return {"namespace": self.ns, "name": self.name}

    def data(self):
        """DatasetData as in the lineage graph."""
        return {
            "id": self.id(),
            "type": self.type,
            "name": self.name,
            "physicalName": self.name,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "namespace": self.ns,
            "sourceName": self.source_name,
            "fields": self.fields,
            "tags": [],
            "lastModifiedAt": iso(self.last_modified_at),
            "lastLifecycleState": self.lifecycle,
            "description": self.description,
            "deleted": self.deleted,
        }

    def json(self):
        d = self.data()
        d.update({
            "currentVersion": self.current_version,
            "columnLineage": self.column_lineage,
            "facets": self.facets,
        })
        return d


class Run:
    __slots__ = ("id", "job", "created_at", "updated_at", "state", "started_at", "ended_at", "nominal_start",
                 "nominal_end", "facets", "job_facets", "inputs", "outputs", "job_version", "seq", "parent_run_id")

    def __init__(self, run_id, job_key, t, seq):
        self.id, self.job, self.created_at, self.updated_at, self.seq = run_id, job_key, t, t, seq
        self.state = "NEW"
        self.started_at = self.ended_at = self.nominal_start = self.nominal_end = None
        self.facets: dict = {}
        self.job_facets: dict = {}
        self.inputs: dict = {}   # (ns, name) -> {"version": uuid, "facets": {...inputFacets}}
        self.outputs: dict = {}
        self.job_version = None
        self.parent_run_id = None

    def json(self):
        duration = None
        if self.started_at is not None and self.ended_at is not None:
            duration = int((self.ended_at - self.started_at).total_seconds() * 1000)

        def versions(io):
            return [
                {"datasetVersionId": {"namespace": ns, "name": name, "version": v["version"]}, "facets": v["facets"]}
                for (ns, name), v in io.items()
            ]

        return {
            "id": self.id,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "nominalStartTime": iso(self.nominal_start),
            "nominalEndTime": iso(self.nominal_end),
            "state": self.state,
            "startedAt": iso(self.started_at),
            "endedAt": iso(self.ended_at),
            "durationMs": duration,
            "args": {},
            "jobVersion": self.job_version,
            "inputDatasetVersions": versions(self.inputs),
            "outputDatasetVersions": versions(self.outputs),
            "context": {},
            "facets": self.facets,
        }


class Job:
    __slots__ = ("ns", "name", "simple_name", "parent_name", "parent_uuid", "uuid", "type", "created_at",
                 "updated_at", "description", "location", "inputs", "outputs", "current_version", "latest_run",
                 "runs", "facets")

    def __init__(self, ns, name, t):
        self.ns, self.name, self.simple_name = ns, name, name
        self.parent_name = self.parent_uuid = None
        self.uuid = name_uuid("job", ns, name)
        self.type = "BATCH"
        self.created_at = self.updated_at = t
        self.description = self.location = None
        self.inputs: set = set()
        self.outputs: set = set()
        self.current_version = None
        self.latest_run: Run | None = None
        self.runs: list[Run] = []
        self.facets: dict = {}

    def id(self):
        return {"namespace": self.ns, "name": self.name}

    def data(self):
        """JobData as in the lineage graph."""
        return {
            "id": self.id(),
            "type": self.type,
            "name": self.name,
            "simpleName": self.simple_name,
            "parentJobName": self.parent_name,
            "parentJobUuid": self.parent_uuid,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "namespace": self.ns,
            "inputs": [{"namespace": n, "name": m} for n, m in sorted(self.inputs)],
            "outputs": [{"namespace": n, "name": m} for n, m in sorted(self.outputs)],
            "location": self.location,
            "description": self.description,
            "latestRun": self.latest_run.json() if self.latest_run else None,
        }

    def json(self):
        d = self.data()
        d.update({
            "facets": self.facets,
            "currentVersion": self.current_version,
            "labels": [],
            "tags": [],
            "latestRuns": [r.json() for r in sorted(self.runs, key=run_order)[:10]],
        })
        return d


def run_order(r: Run):
    """Newest first: by creation (first event) time, then by arrival."""
    return (-r.created_at.timestamp(), -r.seq)


class Store:
    def __init__(self, path: str):
        self.path = path
        self.namespaces: dict[str, Namespace] = {}
        self.jobs: dict[tuple[str, str], Job] = {}
        self.datasets: dict[tuple[str, str], Dataset] = {}
        self.runs: dict[str, Run] = {}
        self.events: list[tuple[datetime, int, dict]] = []
        self._seq = 0
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise RuntimeError(f"journal {path} is in use by another contract server (one journal per database)")
        self._replay()

    # ---- journal -------------------------------------------------------------------------
    def _replay(self):
        with open(self.path, "rb") as fh:
            data = fh.read()
        good = 0
        n = 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # torn last write (killed mid-write): dropped below
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                break
            if "init" in rec:
                t = parse_time(rec["init"]["createdAt"])
                self.namespaces.setdefault(DEFAULT_NAMESPACE, Namespace(DEFAULT_NAMESPACE, t, DEFAULT_NAMESPACE_DESCRIPTION))
            else:
                self.apply(rec["kind"], rec["event"])
                n += 1
            good += len(line)
        if good < len(data):
            log.warning("journal %s: dropping %d bytes of a torn last record", self.path, len(data) - good)
            os.ftruncate(self._fd, good)
        if DEFAULT_NAMESPACE not in self.namespaces:
            t = now_utc()
            self.namespaces[DEFAULT_NAMESPACE] = Namespace(DEFAULT_NAMESPACE, t, DEFAULT_NAMESPACE_DESCRIPTION)
            os.write(self._fd, orjson.dumps({"init": {"createdAt": iso(t), "format": 1}}) + b"\n")
        self.replayed = n

    def record(self, kind: str, event: dict):
        """Apply an accepted event, then journal it (one write(2) per event, O_APPEND)."""
        self.apply(kind, event)
        os.write(self._fd, orjson.dumps({"kind": kind, "event": event}) + b"\n")

    def close(self):
        try:
            os.close(self._fd)
        except OSError:
            pass

    # ---- model updates -------------------------------------------------------------------
    def _namespace(self, name: str, t: datetime) -> str:
        name = fmt_namespace(name)
        ns = self.namespaces.get(name)
        if ns is None:
            self.namespaces[name] = Namespace(name, t)
        else:
            ns.updated_at = t
        return name

    def _dataset(self, ds: dict, t: datetime, run: Run | None, io: str | None) -> tuple[str, str]:
        ns = self._namespace(ds["namespace"], t)
        key = (ns, ds["name"])
        d = self.datasets.get(key)
        if d is None:
            d = self.datasets[key] = Dataset(ns, ds["name"], t)
        d.updated_at = t
        facets = ds.get("facets") or {}
        for k, v in facets.items():
            if isinstance(v, dict) and v.get("_deleted") is True:
                d.facets.pop(k, None)
            else:
                d.facets[k] = v
        src = facets.get("dataSource")
        if isinstance(src, dict) and src.get("name"):
            d.source_name = src["name"]
        dtype = facets.get("datasetType")
        if isinstance(dtype, dict) and str(dtype.get("datasetType", "")).upper() == "STREAM":
            d.type = "STREAM"
        schema = facets.get("schema")
        if isinstance(schema, dict) and isinstance(schema.get("fields"), list):
            d.fields = [
                {"name": f.get("name"), "type": f.get("type"), "tags": [], "description": f.get("description")}
                for f in schema["fields"]
            ]
        doc = facets.get("documentation")
        if isinstance(doc, dict) and doc.get("description") is not None:
            d.description = doc["description"]
        life = facets.get("lifecycleStateChange")
        if isinstance(life, dict) and life.get("lifecycleStateChange"):
            d.lifecycle = life["lifecycleStateChange"]
            d.deleted = d.lifecycle.upper() == "DROP"
        cl = facets.get("columnLineage")
        if isinstance(cl, dict):
            d.column_lineage = cl.get("fields")
        # versions: a write makes a new version per run; a read uses the current one
        if io == "output" or d.current_version is None:
            d.current_version = name_uuid("dsv", ns, d.name, run.id if run else iso(t))
        if run is not None:
            target = run.inputs if io == "input" else run.outputs
            io_facets = ds.get("inputFacets" if io == "input" else "outputFacets") or {}
            prev = target.get(key)
            merged = dict(prev["facets"]) if prev else {}
            merged.update(io_facets)
            target[key] = {"version": d.current_version, "facets": merged}
        return key

    def _job(self, ns: str, name: str, t: datetime) -> Job:
        key = (ns, name)
        j = self.jobs.get(key)
        if j is None:
            j = self.jobs[key] = Job(ns, name, t)
        return j

    @staticmethod
    def _job_meta(j: Job, facets: dict):
        jt = facets.get("jobType")
        if isinstance(jt, dict):
            j.type = "STREAM" if str(jt.get("processingType", "")).upper() == "STREAMING" else "BATCH"
        doc = facets.get("documentation")
        if isinstance(doc, dict) and doc.get("description") is not None:
            j.description = doc["description"]
        loc = facets.get("sourceCodeLocation")
        if isinstance(loc, dict) and loc.get("url"):
            j.location = loc["url"]

    def _set_version(self, j: Job, run: Run | None):
        h = hashlib.sha256(orjson.dumps([j.ns, j.name, sorted(j.inputs), sorted(j.outputs), j.location])).hexdigest()
        j.current_version = name_uuid("jv", h)
        if run is not None:
            run.job_version = {"namespace": j.ns, "name": j.name, "version": j.current_version}

    def _new_run(self, run_id: str, job: Job, t: datetime) -> Run:
        self._seq += 1
        r = self.runs[run_id] = Run(run_id, (job.ns, job.name), t, self._seq)
        job.runs.append(r)
        return r

    @staticmethod
    def _transition(r: Run, state: str | None, t: datetime):
        if state is None:
            return
        r.state = state
        if state == "RUNNING":
            if r.started_at is None:
                r.started_at = t
        elif state in DONE:
            r.ended_at = t

    def apply(self, kind: str, ev: dict):
        t = parse_time(ev["eventTime"])
        self._seq += 1
        self.events.append((t, self._seq, ev))
        if kind == "DatasetEvent":
            self._dataset(ev["dataset"], t, None, None)
            return
        job_ev = ev["job"]
        job_facets = job_ev.get("facets") or {}
        ns = self._namespace(job_ev["namespace"], t)
        if kind == "JobEvent":
            j = self._job(ns, job_ev["name"], t)
            j.updated_at = t
            self._job_meta(j, job_facets)
            j.facets.update(job_facets)
            ins = [self._dataset(d, t, None, "input") for d in ev.get("inputs") or []]
            outs = [self._dataset(d, t, None, "output") for d in ev.get("outputs") or []]
            if ins or outs:
                j.inputs, j.outputs = set(ins), set(outs)
                self._set_version(j, None)
            return

        # RunEvent
        run_ev = ev["run"]
        run_id = run_ev["runId"].lower()
        run_facets = run_ev.get("facets") or {}
        state = STATE_OF.get(str(ev.get("eventType") or "").upper())
        name = job_ev["name"]
        parent_job = None
        parent = run_facets.get("parent")
        if isinstance(parent, dict) and isinstance(parent.get("run"), dict) and isinstance(parent.get("job"), dict):
            prun_id = str(parent["run"].get("runId", "")).lower()
            prun = self.runs.get(prun_id)
            if prun is not None:
                parent_job = self.jobs[prun.job]
            else:
                parent_job = self._job(ns, parent["job"]["name"], t)
                prun = self._new_run(prun_id, parent_job, t)
                self._transition(prun, state, t)
                parent_job.latest_run = prun
        if parent_job is not None:
            prefix = parent_job.name + "."
            simple = name[len(prefix):] if name.startswith(prefix) else name
            j = self._job(ns, prefix + simple, t)
            j.simple_name, j.parent_name, j.parent_uuid = simple, parent_job.name, parent_job.uuid
        else:
            j = self._job(ns, name, t)
        j.updated_at = t
        self._job_meta(j, job_facets)

        r = self.runs.get(run_id)
        if r is None:
            r = self._new_run(run_id, j, t)
        r.updated_at = t
        self._transition(r, state, t)
        r.facets.update(run_facets)
        r.job_facets.update(job_facets)
        nominal = run_facets.get("nominalTime")
        if isinstance(nominal, dict):
            if nominal.get("nominalStartTime"):
                r.nominal_start = parse_time(nominal["nominalStartTime"])
            if nominal.get("nominalEndTime"):
                r.nominal_end = parse_time(nominal["nominalEndTime"])
        for d in ev.get("inputs") or []:
            self._dataset(d, t, r, "input")
        for d in ev.get("outputs") or []:
            self._dataset(d, t, r, "output")

        rj = self.jobs[r.job]  # a run stays with the job it was created for
        rj.latest_run = r
        rj.facets = dict(r.job_facets)
        if rj.type == "STREAM":
            if ev.get("inputs") or ev.get("outputs"):
                rj.inputs |= set(r.inputs)
                rj.outputs |= set(r.outputs)
                self._set_version(rj, r)
        elif r.state in DONE and state in DONE:
            rj.inputs, rj.outputs = set(r.inputs), set(r.outputs)
            self._set_version(rj, r)
            if r.state == "COMPLETED":
                for key in r.outputs:
                    self.datasets[key].last_modified_at = t

    # ---- queries -------------------------------------------------------------------------
    def lineage(self, start: tuple[str, tuple[str, str]], depth: int) -> list[dict] | None:
        node_type, key = start
        consumers: dict[tuple, set] = {}
        producers: dict[tuple, set] = {}
        for jk, j in self.jobs.items():
            for d in j.inputs:
                consumers.setdefault(d, set()).add(jk)
            for d in j.outputs:
                producers.setdefault(d, set()).add(jk)
        if node_type == "job":
            if key not in self.jobs:
                return None
            jobs = {key}
        else:
            if key not in self.datasets:
                return None
            jobs = consumers.get(key, set()) | producers.get(key, set())
        frontier = set(jobs)
        for _ in range(max(depth, 0)):
            nxt = set()
            for jk in frontier:
                j = self.jobs[jk]
                for d in j.inputs:
                    nxt |= producers.get(d, set())
                for d in j.outputs:
                    nxt |= consumers.get(d, set())
            nxt -= jobs
            if not nxt:
                break
            jobs |= nxt
            frontier = nxt
        datasets = set()
        if node_type == "dataset":
            datasets.add(key)
        for jk in jobs:
            datasets |= self.jobs[jk].inputs | self.jobs[jk].outputs
        jid = lambda k: f"job:{k[0]}:{k[1]}"  # noqa: E731
        did = lambda k: f"dataset:{k[0]}:{k[1]}"  # noqa: E731
        graph = []
        for jk in jobs:
            j = self.jobs[jk]
            graph.append({
                "id": jid(jk), "type": "JOB", "data": j.data(),
                "inEdges": [{"origin": did(d), "destination": jid(jk)} for d in sorted(j.inputs)],
                "outEdges": [{"origin": jid(jk), "destination": did(d)} for d in sorted(j.outputs)],
            })
        for dk in datasets:
            d = self.datasets.get(dk)
            if d is None:
                continue
            graph.append({
                "id": did(dk), "type": "DATASET", "data": d.data(),
                "inEdges": [{"origin": jid(p), "destination": did(dk)} for p in sorted(producers.get(dk, set()) & jobs)],
                "outEdges": [{"origin": did(dk), "destination": jid(c)} for c in sorted(consumers.get(dk, set()) & jobs)],
            })
        graph.sort(key=lambda n: n["id"])
        return graph
