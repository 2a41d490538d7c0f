"""In-memory OpenMetadata model, rebuilt at start-up from an append-only JSON-lines journal.

Every accepted write is one journal line `{"op": ..., "ts": ms, "args": ...}`, appended after the
write was applied; replaying the lines in order reproduces the state (ids derive from the entity,
its FQN and the write's sequence number, timestamps are the journaled ones). A torn last line (a
kill during the write) is dropped. An exclusive lock keeps two servers off one journal.

Semantics follow OpenMetadata's EntityRepository: PUT creates (201) or updates (200); an update
that changes nothing keeps version and updatedAt; a change bumps the version by 0.1, a backward
incompatible one (a column removed or retyped) to the next major; soft delete sets `deleted` and
bumps the version, restore undoes it; hard delete removes the entity. Unknown references are 404s
with OpenMetadata's message (`<entityType> instance for <id or name> not found`).
"""
from __future__ import annotations

import bisect
import copy
import fcntl
import logging
import os
import time
import uuid

import orjson

from . import fqn as FQN

log = logging.getLogger("openmetadata_contract")

_UUID_NS = uuid.UUID("3f5d8a64-2f1e-4c55-9d0e-6f2c8b1a7e41")
UPDATED_BY = "admin"
TABLE_FIELDS = {
    "tableConstraints", "tablePartition", "usageSummary", "owners", "customMetrics", "columns", "tags",
    "followers", "joins", "schemaDefinition", "dataModel", "extension", "testSuite", "domains",
    "dataProducts", "lifeCycle", "sourceHash", "votes", "sampleData", "tableProfilerConfig",
}
PIPELINE_FIELDS = {"tasks", "pipelineStatus", "followers", "tags", "owners", "scheduleInterval", "domains",
                   "dataProducts", "extension", "votes", "usageSummary", "lifeCycle", "sourceHash"}
TYPE_DISPLAY = {"VARCHAR": "varchar(255)", "BIGINT": "bigint", "INT": "int", "TIMESTAMP": "timestamp",
                "NUMERIC": "numeric(18,2)", "BOOLEAN": "boolean", "STRING": "string", "STRUCT": "struct<a:int,b:string>"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def not_found(entity_type: str, key: str) -> ApiError:
    return ApiError(404, f"{entity_type} instance for {key} not found")


def now_ms() -> int:
    return int(time.time() * 1000)


def bump(version: float, major: bool) -> float:
    return round(version + 1.0, 1) if major else round(version + 0.1, 1)


def ref(entity: dict, etype: str) -> dict:
    r = {"id": entity["id"], "type": etype, "name": entity["name"],
         "fullyQualifiedName": entity["fullyQualifiedName"], "deleted": entity.get("deleted", False)}
    if entity.get("displayName"):
        r["displayName"] = entity["displayName"]
    return r


def _names(columns) -> dict:
    return {c["name"]: c for c in columns or []}


def incompatible(old_cols, new_cols) -> bool:
    """A column removed or retyped, at any depth: OpenMetadata's major version change."""
    old, new = _names(old_cols), _names(new_cols)
    for name, c in old.items():
        n = new.get(name)
        if n is None or n.get("dataType") != c.get("dataType"):
            return True
        if incompatible(c.get("children"), n.get("children")):
            return True
    return False


class Store:
    def __init__(self, path: str | None):
        self.path = path
        self.seq = 0
        self.db_services: dict[str, dict] = {}
        self.databases: dict[str, dict] = {}
        self.schemas: dict[str, dict] = {}
        self.tables: dict[str, dict] = {}        # FQN -> table
        self.table_ids: dict[str, str] = {}      # id -> FQN
        self._sorted: list[str] | None = None     # table FQNs in listing order
        self.principals: dict[tuple[str, str], dict] = {}   # (user|team, name) -> entity
        self.pipeline_services: dict[str, dict] = {}
        self.pipelines: dict[str, dict] = {}
        self.statuses: dict[str, dict[int, dict]] = {}       # pipeline FQN -> timestamp -> status
        self.classifications: dict[str, dict] = {}
        self.tags: dict[str, dict] = {}
        self.edges: dict[tuple[str, str], dict] = {}         # (fromId, toId) -> edge
        self.events: list[dict] = []             # change events, oldest first
        self.event_ts: list[int] = []            # their timestamps (for bisect)
        self.replayed = 0
        self._fh = None
        if path:
            self._replay()
            self._fh = open(path, "ab")
            try:
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise RuntimeError(f"journal {path} is in use by another server")

    # ---- journal ---------------------------------------------------------------------------
    def _replay(self):
        if not os.path.exists(self.path):
            return
        with open(self.path, "rb") as fh:
            lines = [l for l in fh.read().split(b"\n") if l.strip()]
        good = []
        for i, line in enumerate(lines):
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                if i == len(lines) - 1:
                    log.warning("journal %s: dropping a torn last line", self.path)
                    break
                raise RuntimeError(f"journal {self.path}: line {i + 1} is not JSON")
            self._apply(rec["op"], rec["ts"], rec["args"])
            good.append(line)
        self.replayed = len(good)
        if len(good) != len(lines):
            with open(self.path, "wb") as fh:
                fh.write(b"".join(l + b"\n" for l in good))

    def write(self, op: str, args: dict, ts: int | None = None):
        """Apply a write and journal it; raises ApiError (nothing applied, nothing journaled)."""
        ts = now_ms() if ts is None else ts
        result = self._apply(op, ts, args)
        if self._fh is not None:
            self._fh.write(orjson.dumps({"op": op, "ts": ts, "args": args}) + b"\n")
            self._fh.flush()
        return result

    def _apply(self, op: str, ts: int, args: dict):
        fn = getattr(self, "op_" + op, None)
        if fn is None:
            raise RuntimeError(f"unknown journal op {op}")
        result = fn(ts, args)
        self.seq += 1
        return result

    def close(self):
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def new_id(self, kind: str, key: str) -> str:
        return str(uuid.uuid5(_UUID_NS, f"{kind}\x1f{key}\x1f{self.seq}"))

    # ---- lookups ---------------------------------------------------------------------------
    def sorted_tables(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self.tables)
        return self._sorted

    def _dirty(self):
        self._sorted = None

    def table_by_id(self, tid: str) -> dict | None:
        f = self.table_ids.get(tid)
        return self.tables.get(f) if f else None

    def entity_by_id(self, etype: str, eid: str) -> dict | None:
        if etype == "table":
            return self.table_by_id(eid)
        pools = {"pipeline": self.pipelines.values(), "pipelineService": self.pipeline_services.values(),
                 "databaseService": self.db_services.values(), "database": self.databases.values(),
                 "databaseSchema": self.schemas.values(), "classification": self.classifications.values(),
                 "tag": self.tags.values(),
                 "user": (p for (t, _), p in self.principals.items() if t == "user"),
                 "team": (p for (t, _), p in self.principals.items() if t == "team")}
        if etype not in pools:
            raise ApiError(400, f"Invalid entity type {etype}")
        return next((e for e in pools[etype] if e["id"] == eid), None)

    def entity_by_name(self, etype: str, name: str) -> dict | None:
        maps = {"table": self.tables, "pipeline": self.pipelines, "pipelineService": self.pipeline_services,
                "databaseService": self.db_services, "database": self.databases, "databaseSchema": self.schemas,
                "classification": self.classifications, "tag": self.tags}
        if etype in ("user", "team"):
            return self.principals.get((etype, name))
        if etype not in maps:
            raise ApiError(400, f"Invalid entity type {etype}")
        return maps[etype].get(name)

    # ---- database services, databases, schemas (created by the admin writes) ---------------
    def _ensure_container(self, ts: int, service: str, service_type: str, database: str, schema: str):
        svc = self.db_services.get(FQN.quote_name(service))
        if svc is None:
            sf = FQN.quote_name(service)
            svc = {"id": self.new_id("databaseService", sf), "name": service, "fullyQualifiedName": sf,
                   "serviceType": service_type, "version": 0.1, "updatedAt": ts, "updatedBy": UPDATED_BY,
                   "deleted": False}
            self.db_services[sf] = svc
        dbf = FQN.add(svc["fullyQualifiedName"], database)
        db = self.databases.get(dbf)
        if db is None:
            db = {"id": self.new_id("database", dbf), "name": database, "fullyQualifiedName": dbf,
                  "service": ref(svc, "databaseService"), "serviceType": svc["serviceType"], "version": 0.1,
                  "updatedAt": ts, "updatedBy": UPDATED_BY, "deleted": False}
            self.databases[dbf] = db
        scf = FQN.add(dbf, schema)
        sc = self.schemas.get(scf)
        if sc is None:
            sc = {"id": self.new_id("databaseSchema", scf), "name": schema, "fullyQualifiedName": scf,
                  "service": ref(svc, "databaseService"), "database": ref(db, "database"),
                  "serviceType": svc["serviceType"], "version": 0.1, "updatedAt": ts, "updatedBy": UPDATED_BY,
                  "deleted": False}
            self.schemas[scf] = sc
        for e in (svc, db, sc):
            if e["deleted"]:
                e["deleted"] = False
                e["version"] = bump(e["version"], False)
                e["updatedAt"] = ts
        return svc, db, sc

    def _tag_labels(self, ts: int, tag_fqns, create: bool) -> list[dict]:
        labels = []
        for t in tag_fqns or []:
            tag = self.tags.get(t)
            if tag is None:
                if not create:
                    raise not_found("tag", t)
                parts = FQN.names(t)
                if len(parts) < 2:
                    raise ApiError(400, f"Invalid tag FQN {t}")
                self.op_classification_put(ts, {"name": parts[0], "description": f"{parts[0]} (contract seed)"},
                                           keep_existing=True)
                self.op_tag_put(ts, {"classification": parts[0], "name": parts[-1],
                                     "description": f"{parts[-1]} (contract seed)"}, keep_existing=True)
                tag = self.tags[t]
            labels.append({"tagFQN": tag["fullyQualifiedName"], "name": tag["name"], "source": "Classification",
                           "labelType": "Manual", "state": "Confirmed"})
        return labels

    def _owners(self, ts: int, owners, create: bool) -> list[dict]:
        out = []
        for o in owners or []:
            if isinstance(o, str):      # admin writes: a user name
                p = self.principals.get(("user", o))
                if p is None:
                    if not create:
                        raise not_found("user", o)
                    self.op_principals_put(ts, {"type": "user", "names": [o]})
                    p = self.principals[("user", o)]
                out.append(ref(p, "user"))
            else:                        # an EntityReference {id, type}
                etype = o.get("type")
                if etype not in ("user", "team"):
                    raise ApiError(400, f"Invalid owner type {etype}")
                p = self.entity_by_id(etype, o["id"])
                if p is None:
                    raise not_found(etype, o["id"])
                out.append(ref(p, etype))
        return out

    @staticmethod
    def _columns(prefix: str, cols) -> list[dict]:
        out = []
        for i, c in enumerate(cols or []):
            c = dict(c)
            c.setdefault("dataTypeDisplay", TYPE_DISPLAY.get(c.get("dataType"), str(c.get("dataType", "")).lower()))
            c["fullyQualifiedName"] = FQN.add(prefix, c["name"])
            c.setdefault("tags", [])
            c["ordinalPosition"] = i + 1
            if c.get("children"):
                c["children"] = Store._columns(c["fullyQualifiedName"], c["children"])
                for ch in c["children"]:
                    ch.pop("ordinalPosition", None)
            out.append(c)
        return out

    # ---- tables ----------------------------------------------------------------------------
    def _upsert_table(self, ts: int, spec: dict) -> str:
        """Create or update one table from an admin spec; returns created|updated|unchanged."""
        try:
            svc, db, sc = self._ensure_container(ts, spec["service"], spec.get("serviceType", "Postgres"),
                                                 spec["database"], spec["schema"])
            tf = FQN.add(sc["fullyQualifiedName"], spec["name"])
        except FQN.InvalidName as e:
            raise ApiError(400, str(e))
        except KeyError as e:
            raise ApiError(400, f"table spec needs {e.args[0]}")
        new = {
            "name": spec["name"], "fullyQualifiedName": tf,
            "tableType": spec.get("tableType", "Regular"),
            "columns": self._columns(tf, spec.get("columns", [])),
            "owners": self._owners(ts, spec.get("owners"), create=True),
            "tags": self._tag_labels(ts, spec.get("tags"), create=True),
            "databaseSchema": ref(sc, "databaseSchema"), "database": ref(db, "database"),
            "service": ref(svc, "databaseService"), "serviceType": svc["serviceType"],
        }
        for k in ("description", "displayName"):
            if spec.get(k) is not None:
                new[k] = spec[k]
        old = self.tables.get(tf)
        if old is None:
            new.update(id=self.new_id("table", tf), version=0.1, updatedAt=ts, updatedBy=UPDATED_BY, deleted=False)
            self.tables[tf] = new
            self.table_ids[new["id"]] = tf
            self._dirty()
            self._event("entityCreated", new, ts, None)
            return "created"
        content = {k: v for k, v in old.items() if k not in ("id", "version", "updatedAt", "updatedBy", "deleted")}
        if content == new and not old["deleted"]:
            return "unchanged"
        prev = old["version"]
        major = incompatible(old["columns"], new["columns"])
        restored = old["deleted"]
        for k in list(old):
            if k not in ("id", "version", "updatedAt", "updatedBy", "deleted"):
                del old[k]
        old.update(new)
        old.update(version=bump(prev, major), updatedAt=ts, updatedBy=UPDATED_BY, deleted=False)
        self._event("entityRestored" if restored else "entityUpdated", old, ts, prev)
        return "updated"

    def _event(self, kind: str, t: dict, ts: int, prev):
        """Record a ChangeEvent (type/changeEvent.json) as OpenMetadata's ChangeEventHandler does for
        every table write: entityCreated, entityUpdated, entityRestored, entitySoftDeleted,
        entityDeleted (without `entity` and `changeDescription`, which the spec makes optional)."""
        ev = {"eventType": kind, "entityType": "table", "entityId": t["id"],
              "entityFullyQualifiedName": t["fullyQualifiedName"], "currentVersion": t.get("version"),
              "userName": UPDATED_BY, "timestamp": ts}
        if prev is not None:
            ev["previousVersion"] = prev
        # appended in time order (a write's ts is never older than the last event's)
        ts = max(ts, self.event_ts[-1]) if self.event_ts else ts
        ev["timestamp"] = ts
        self.events.append(ev)
        self.event_ts.append(ts)

    def events_since(self, ts: int, wanted: dict[str, set]) -> list[dict]:
        """OpenMetadata's ChangeEventDAO.list: `eventTime >= ts`, per event type the entity types
        asked for (`*` = all), oldest first."""
        lo = bisect.bisect_left(self.event_ts, ts)
        out = []
        for e in self.events[lo:]:
            types = wanted.get(e["eventType"], ())
            if e["entityType"] in types or "*" in types:
                out.append(e)
        return out

    def op_events_purge(self, ts: int, args: dict):
        """Test-only: drop the change events of `fqns` (OpenMetadata purges old change events; a
        consumer must not depend on every event surviving)."""
        fqns = set(args.get("fqns") or [])
        keep = [e for e in self.events if e["entityFullyQualifiedName"] not in fqns]
        purged = len(self.events) - len(keep)
        self.events = keep
        self.event_ts = [e["timestamp"] for e in keep]
        return {"purged": purged}

    def op_tables_upsert(self, ts: int, args: dict):
        counts = {"created": 0, "updated": 0, "unchanged": 0}
        specs = args.get("tables")
        if not isinstance(specs, list):
            raise ApiError(400, "body needs a list 'tables'")
        for spec in specs:
            counts[self._upsert_table(ts, spec)] += 1
        return counts

    def op_tables_bulk(self, ts: int, args: dict):
        services = args.get("services")
        n = args.get("tables")
        if not isinstance(services, list) or not services or not isinstance(n, int) or n < 0:
            raise ApiError(400, "body needs 'services' (a list of names) and 'tables' (per service)")
        dbs, schemas = int(args.get("databases", 2)), int(args.get("schemas", 4))
        ncols = int(args.get("columns", 4))
        dotted = int(args.get("dottedEvery", 0))
        counts = {"created": 0, "updated": 0, "unchanged": 0}
        for svc in services:
            for i in range(n):
                name = f"t.{i:05d}" if dotted and i % dotted == 0 else f"t{i:05d}"
                spec = {"service": svc, "serviceType": args.get("serviceType", "Postgres"),
                        "database": f"db{i % dbs}", "schema": f"s{(i // dbs) % schemas}", "name": name,
                        "description": args.get("description"), "columns": sample_columns(ncols),
                        "tags": args.get("tags", []), "owners": args.get("owners", [])}
                counts[self._upsert_table(ts, spec)] += 1
        return counts

    def _delete_table(self, ts: int, t: dict, hard: bool):
        if hard:
            del self.tables[t["fullyQualifiedName"]]
            del self.table_ids[t["id"]]
            self._dirty()
            for key in [k for k in self.edges if t["id"] in k]:
                del self.edges[key]
            self._event("entityDeleted", t, ts, t["version"])
        else:
            prev = t["version"]
            t.update(deleted=True, version=bump(prev, False), updatedAt=ts, updatedBy=UPDATED_BY)
            self._event("entitySoftDeleted", t, ts, prev)

    def op_tables_delete(self, ts: int, args: dict):
        hard = bool(args.get("hardDelete", False))
        targets = []
        for f in args.get("fqns", []):
            t = self.tables.get(f)
            if t is None or (t["deleted"] and not hard):
                raise not_found("table", f)
            targets.append(t)
        for t in targets:
            self._delete_table(ts, t, hard)
        return {"deleted": len(targets)}

    def op_table_restore(self, ts: int, args: dict):
        t = self.table_by_id(args.get("id", ""))
        if t is None:
            raise not_found("table", args.get("id"))
        if not t["deleted"]:
            raise ApiError(400, f"Entity with id {t['id']} is not deleted")
        prev = t["version"]
        t.update(deleted=False, version=bump(prev, False), updatedAt=ts, updatedBy=UPDATED_BY)
        self._event("entityRestored", t, ts, prev)
        return t

    def op_database_service_delete(self, ts: int, args: dict):
        name = args["name"]
        svc = self.db_services.get(name)
        hard, recursive = bool(args.get("hardDelete")), bool(args.get("recursive"))
        if svc is None or (svc["deleted"] and not hard):
            raise not_found("databaseService", name)
        prefix = svc["fullyQualifiedName"] + "."
        dbs = [k for k in self.databases if k.startswith(prefix)]
        if dbs and not recursive:
            raise ApiError(400, "databaseService is not empty")
        tables = [self.tables[k] for k in self.sorted_tables() if k.startswith(prefix)]
        for t in tables:
            if hard or not t["deleted"]:
                self._delete_table(ts, t, hard)
        for pool in (self.schemas, self.databases):
            for k in [k for k in pool if k.startswith(prefix)]:
                if hard:
                    del pool[k]
                else:
                    pool[k].update(deleted=True, updatedAt=ts)
        if hard:
            del self.db_services[name]
        else:
            svc.update(deleted=True, version=bump(svc["version"], False), updatedAt=ts)
        return {"deleted": len(tables)}

    # ---- users and teams (owners) ----------------------------------------------------------
    def op_principals_put(self, ts: int, args: dict):
        etype = args.get("type", "user")
        if etype not in ("user", "team"):
            raise ApiError(400, "type must be user or team")
        out = []
        for name in args.get("names", []):
            p = self.principals.get((etype, name))
            if p is None:
                qn = FQN.quote_name(name)
                p = {"id": self.new_id(etype, qn), "name": name, "fullyQualifiedName": qn, "version": 0.1,
                     "updatedAt": ts, "updatedBy": UPDATED_BY, "deleted": False}
                self.principals[(etype, name)] = p
            out.append(p)
        return out

    # ---- generic PUT upsert ----------------------------------------------------------------
    def _upsert(self, pool: dict, key: str, etype: str, ts: int, fields: dict, keep_existing=False):
        old = pool.get(key)
        if old is None:
            e = {"id": self.new_id(etype, key), **fields, "version": 0.1, "updatedAt": ts,
                 "updatedBy": UPDATED_BY, "deleted": False}
            pool[key] = e
            return e, True
        if keep_existing:
            return old, False
        changed = {k: v for k, v in fields.items() if old.get(k) != v}
        if changed or old.get("deleted"):
            major = "tasks" in changed and incompatible_tasks(old.get("tasks"), fields.get("tasks"))
            old.update(changed)
            old.update(version=bump(old["version"], major), updatedAt=ts, updatedBy=UPDATED_BY, deleted=False)
        return old, False

    def op_pipeline_service_put(self, ts: int, body: dict):
        name = body["name"]
        try:
            key = FQN.quote_name(name)
        except FQN.InvalidName as e:
            raise ApiError(400, str(e))
        fields = {k: v for k, v in body.items() if v is not None}
        fields["fullyQualifiedName"] = key
        if "tags" in fields:
            fields["tags"] = self._tag_labels(ts, [t["tagFQN"] for t in fields["tags"]], create=False)
        if "owners" in fields:
            fields["owners"] = self._owners(ts, fields["owners"], create=False)
        return self._upsert(self.pipeline_services, key, "pipelineService", ts, fields)

    def op_pipeline_put(self, ts: int, body: dict):
        svc = self.pipeline_services.get(body["service"])
        if svc is None or svc["deleted"]:
            raise not_found("pipelineService", body["service"])
        try:
            pf = FQN.add(svc["fullyQualifiedName"], body["name"])
        except FQN.InvalidName as e:
            raise ApiError(400, str(e))
        fields = {k: v for k, v in body.items() if v is not None and k != "service"}
        fields.update(fullyQualifiedName=pf, service=ref(svc, "pipelineService"), serviceType=svc["serviceType"])
        if "tags" in fields:
            fields["tags"] = self._tag_labels(ts, [t["tagFQN"] for t in fields["tags"]], create=False)
        if "owners" in fields:
            fields["owners"] = self._owners(ts, fields["owners"], create=False)
        tasks = []
        seen = set()
        for t in fields.get("tasks", []):
            t = {k: v for k, v in t.items() if v is not None}
            if t["name"] in seen:
                raise ApiError(400, f"Task name {t['name']} is not unique in pipeline {pf}")
            seen.add(t["name"])
            t["fullyQualifiedName"] = FQN.add(pf, t["name"])
            if "tags" in t:
                t["tags"] = self._tag_labels(ts, [x["tagFQN"] for x in t["tags"]], create=False)
            tasks.append(t)
        if "tasks" in fields:
            fields["tasks"] = tasks
        return self._upsert(self.pipelines, pf, "pipeline", ts, fields)

    def op_pipeline_status_put(self, ts: int, args: dict):
        pf, status = args["fqn"], args["status"]
        p = self.pipelines.get(pf)
        if p is None or p["deleted"]:
            raise not_found("pipeline", pf)
        names = {t["name"] for t in p.get("tasks", [])}
        for t in status.get("taskStatus") or []:
            if t["name"] not in names:
                raise ApiError(400, f"Invalid task name {t['name']}")
        stored = {k: v for k, v in status.items() if v is not None}
        self.statuses.setdefault(pf, {})[status["timestamp"]] = stored
        return p

    def op_classification_put(self, ts: int, body: dict, keep_existing=False):
        try:
            key = FQN.quote_name(body["name"])
        except FQN.InvalidName as e:
            raise ApiError(400, str(e))
        fields = {k: v for k, v in body.items() if v is not None}
        fields["fullyQualifiedName"] = key
        fields.setdefault("mutuallyExclusive", False)
        fields.setdefault("provider", "user")
        return self._upsert(self.classifications, key, "classification", ts, fields, keep_existing)

    def op_tag_put(self, ts: int, body: dict, keep_existing=False):
        parent_fqn, cls_name = body.get("parent"), body.get("classification")
        if parent_fqn:
            parent = self.tags.get(parent_fqn)
            if parent is None:
                raise not_found("tag", parent_fqn)
            cls = self.classifications[FQN.split(parent_fqn)[0]]
            prefix = parent["fullyQualifiedName"]
        elif cls_name:
            cls = self.classifications.get(FQN.quote_name(cls_name))
            if cls is None:
                raise not_found("classification", cls_name)
            parent, prefix = None, cls["fullyQualifiedName"]
        else:
            raise ApiError(400, "classification or parent must be set")
        try:
            key = FQN.add(prefix, body["name"])
        except FQN.InvalidName as e:
            raise ApiError(400, str(e))
        fields = {k: v for k, v in body.items() if v is not None and k not in ("classification", "parent")}
        fields.update(fullyQualifiedName=key, classification=ref(cls, "classification"))
        if parent is not None:
            fields["parent"] = ref(parent, "tag")
        fields.setdefault("provider", "user")
        fields.setdefault("mutuallyExclusive", False)
        return self._upsert(self.tags, key, "tag", ts, fields, keep_existing)

    # ---- lineage ---------------------------------------------------------------------------
    def _resolve_ref(self, r: dict) -> dict:
        e = self.entity_by_id(r["type"], r["id"])
        if e is None or e.get("deleted"):
            raise not_found(r["type"], r["id"])
        return e

    def _check_details(self, from_e: dict, from_type: str, to_e: dict, to_type: str, details: dict | None):
        if not details:
            return None
        details = {k: v for k, v in details.items() if v is not None}
        if details.get("pipeline"):
            p = self._resolve_ref(details["pipeline"])
            details["pipeline"] = ref(p, details["pipeline"]["type"])
        for cl in details.get("columnsLineage") or []:
            for col in cl.get("fromColumns") or []:
                if from_type != "table" or not _has_column(from_e, col):
                    raise ApiError(400, f"Invalid fully qualified column name {col}")
            col = cl.get("toColumn")
            if col is not None and (to_type != "table" or not _has_column(to_e, col)):
                raise ApiError(400, f"Invalid fully qualified column name {col}")
        details.setdefault("source", "Manual")
        return details

    def op_lineage_put(self, ts: int, body: dict):
        edge = body["edge"]
        fr, to = edge["fromEntity"], edge["toEntity"]
        from_e, to_e = self._resolve_ref(fr), self._resolve_ref(to)
        details = self._check_details(from_e, fr["type"], to_e, to["type"], edge.get("lineageDetails"))
        if details is not None:
            details.update(createdAt=ts, createdBy=UPDATED_BY, updatedAt=ts, updatedBy=UPDATED_BY)
            old = self.edges.get((from_e["id"], to_e["id"]))
            if old and old.get("lineageDetails"):
                details["createdAt"] = old["lineageDetails"].get("createdAt", ts)
        if edge.get("description") is not None:
            details = details or {"source": "Manual"}
            details["description"] = edge["description"]
        self.edges[(from_e["id"], to_e["id"])] = {
            "fromEntity": {"id": from_e["id"], "type": fr["type"]},
            "toEntity": {"id": to_e["id"], "type": to["type"]},
            "lineageDetails": details,
        }

    def op_lineage_patch(self, ts: int, args: dict):
        key = (args["fromId"], args["toId"])
        edge = self.edges.get(key)
        if edge is None or edge["fromEntity"]["type"] != args["fromType"] or edge["toEntity"]["type"] != args["toType"]:
            raise ApiError(404, f"Lineage edge not found between {args['fromType']} {args['fromId']} and "
                                f"{args['toType']} {args['toId']}")
        details = args["details"]   # the patched details, validated by the caller
        from_e = self._resolve_ref(edge["fromEntity"])
        to_e = self._resolve_ref(edge["toEntity"])
        details = self._check_details(from_e, edge["fromEntity"]["type"], to_e, edge["toEntity"]["type"], details)
        if details is not None:
            details.update(updatedAt=ts, updatedBy=UPDATED_BY)
        edge["lineageDetails"] = details
        return edge

    def op_lineage_delete(self, ts: int, args: dict):
        key = (args["fromId"], args["toId"])
        edge = self.edges.get(key)
        if edge is None or edge["fromEntity"]["type"] != args["fromType"] or edge["toEntity"]["type"] != args["toType"]:
            raise ApiError(404, f"Lineage edge not found between {args['fromType']} {args['fromId']} and "
                                f"{args['toType']} {args['toId']}")
        del self.edges[key]

    def lineage(self, etype: str, entity: dict, up: int, down: int) -> dict:
        nodes: dict[str, dict] = {}
        up_edges, down_edges = [], []

        def walk(start: str, depth: int, upstream: bool, out: list):
            frontier, seen = [start], {start}
            for _ in range(depth):
                nxt = []
                for nid in frontier:
                    for (f, t), e in self.edges.items():
                        if (t if upstream else f) != nid:
                            continue
                        other = f if upstream else t
                        out.append({"fromEntity": f, "toEntity": t,
                                    **({"lineageDetails": e["lineageDetails"]} if e["lineageDetails"] else {})})
                        if other not in seen:
                            seen.add(other)
                            nxt.append(other)
                            oe = e["fromEntity" if upstream else "toEntity"]
                            found = self.entity_by_id(oe["type"], other)
                            if found is not None and other != entity["id"]:
                                nodes[other] = ref(found, oe["type"])
                frontier = nxt

        walk(entity["id"], up, True, up_edges)
        walk(entity["id"], down, False, down_edges)
        return {"entity": ref(entity, etype), "nodes": list(nodes.values()),
                "upstreamEdges": up_edges, "downstreamEdges": down_edges}


def incompatible_tasks(old, new) -> bool:
    return bool({t["name"] for t in old or []} - {t["name"] for t in new or []})


def _has_column(table: dict, col_fqn: str) -> bool:
    def walk(cols):
        for c in cols or []:
            if c.get("fullyQualifiedName") == col_fqn or walk(c.get("children")):
                return True
        return False
    return walk(table.get("columns"))


def sample_columns(n: int) -> list[dict]:
    base = [
        {"name": "id", "dataType": "BIGINT", "constraint": "PRIMARY_KEY"},
        {"name": "name", "dataType": "VARCHAR", "dataLength": 255},
        {"name": "payload", "dataType": "STRUCT",
         "children": [{"name": "a", "dataType": "INT"}, {"name": "b", "dataType": "STRING"}]},
        {"name": "updated_at", "dataType": "TIMESTAMP"},
    ]
    cols = [copy.deepcopy(base[i % len(base)]) for i in range(n)]
    for i, c in enumerate(cols):
        if i >= len(base):
            c["name"] = f"{c['name']}_{i}"
    return cols


def apply_json_patch(doc, patch):
    """RFC 6902 add/remove/replace/test/move/copy on a JSON document (copied)."""
    doc = copy.deepcopy(doc)
    if not isinstance(patch, list):
        raise ApiError(400, "a JSON Patch is an array of operations")

    def parse(path):
        if path == "":
            return []
        if not path.startswith("/"):
            raise ApiError(400, f"invalid JSON Pointer {path}")
        return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]

    def container(root, parts):
        cur = root
        for p in parts[:-1]:
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        return cur

    def get(root, parts):
        cur = root
        for p in parts:
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        return cur

    def put(root, parts, value, replace):
        c = container(root, parts)
        last = parts[-1]
        if isinstance(c, list):
            if last == "-":
                c.append(value)
            elif replace:
                c[int(last)] = value
            else:
                c.insert(int(last), value)
        else:
            if replace and last not in c:
                raise KeyError(last)
            c[last] = value

    def remove(root, parts):
        c = container(root, parts)
        last = parts[-1]
        return c.pop(int(last)) if isinstance(c, list) else c.pop(last)

    for op in patch:
        try:
            kind, parts = op["op"], parse(op["path"])
            if not parts:
                if kind in ("add", "replace"):
                    doc = copy.deepcopy(op["value"])
                    continue
                raise ApiError(400, f"unsupported JSON Patch on the root: {kind}")
            if kind == "add":
                put(doc, parts, copy.deepcopy(op["value"]), False)
            elif kind == "replace":
                put(doc, parts, copy.deepcopy(op["value"]), True)
            elif kind == "remove":
                remove(doc, parts)
            elif kind == "test":
                if get(doc, parts) != op["value"]:
                    raise ApiError(400, f"JSON Patch test failed at {op['path']}")
            elif kind in ("move", "copy"):
                src = parse(op["from"])
                value = remove(doc, src) if kind == "move" else copy.deepcopy(get(doc, src))
                put(doc, parts, value, False)
            else:
                raise ApiError(400, f"unknown JSON Patch op {kind}")
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise ApiError(400, f"JSON Patch cannot be applied: {op!r}: {e}")
    return doc
