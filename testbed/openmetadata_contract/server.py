"""OpenMetadata contract server: the OpenMetadata REST API surface lineage-bus uses, with
OpenMetadata's semantics and response shapes, validating every request body against the official
OpenMetadata JSON Schemas. See README.md beside this file.

Run: PYTHONPATH=testbed python -m openmetadata_contract --port 18585 --journal /path/om.jsonl
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import fnmatch
import logging
import re
import signal
import time
from urllib.parse import unquote

import orjson
from aiohttp import web

from . import fqn as FQN
from .store import PIPELINE_FIELDS, TABLE_FIELDS, ApiError, Store, not_found
from contract_common import run_server

from .validate import Validator

log = logging.getLogger("openmetadata_contract")

JSON = "application/json"
JSON_PATCH = "application/json-patch+json"
VERSION = "2.0.7"
_END = chr(0x10FFFF)


def jresp(obj, status=200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type=JSON)


def error(status: int, message: str, **extra) -> web.Response:
    # OpenMetadata's ErrorMessage: {"code": N, "message": "..."}
    return jresp({"code": status, "message": message, **extra}, status)


# ---- query parameters ----------------------------------------------------------------------
def int_param(q, name: str, default: int, lo: int | None = 0, hi: int | None = None) -> int:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise ApiError(400, f"query param {name} must be an integer")
    if lo is not None and v < lo:
        raise ApiError(400, f"[query param {name} must be greater than or equal to {lo}]")
    if hi is not None and v > hi:
        raise ApiError(400, f"[query param {name} must be less than or equal to {hi}]")
    return v


def include_param(q) -> str:
    inc = q.get("include", "non-deleted")
    if inc not in ("all", "deleted", "non-deleted"):
        raise ApiError(400, f"query param include must be one of [all, deleted, non-deleted], got {inc}")
    return inc


def fields_param(q, allowed: set) -> set:
    raw = q.get("fields", "")
    fields = {f.strip() for f in raw.split(",") if f.strip()}
    if "*" in fields:
        return set(allowed)
    for f in fields:
        if f not in allowed:
            raise ApiError(400, f"Invalid field name {f}")
    return fields


def included(entity: dict, include: str) -> bool:
    if include == "all":
        return True
    return entity.get("deleted", False) == (include == "deleted")


def encode_cursor(name: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"name": name})).decode()


def decode_cursor(cursor: str) -> str:
    try:
        return orjson.loads(base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4)))["name"]
    except Exception:  # noqa: BLE001
        raise ApiError(400, f"Invalid cursor {cursor}")


def page(keys: list[str], q, default_limit=10) -> tuple[list[str], dict]:
    """Key-set paging over sorted `keys` with OpenMetadata's before/after cursors."""
    limit = int_param(q, "limit", default_limit, 0, 1000000)
    before, after = q.get("before"), q.get("after")
    if before and after:
        raise ApiError(400, "Only one of before or after query parameter allowed")
    total = len(keys)
    if before:
        end = bisect.bisect_left(keys, decode_cursor(before))
        start = max(0, end - limit)
    else:
        start = bisect.bisect_right(keys, decode_cursor(after)) if after else 0
        end = min(total, start + limit)
    chosen = keys[start:end] if limit else []
    paging = {"total": total}
    if chosen and start > 0:
        paging["before"] = encode_cursor(chosen[0])
    if chosen and end < total:
        paging["after"] = encode_cursor(chosen[-1])
    return chosen, paging


# ---- search (a small part of Elasticsearch's query_string) --------------------------------
def _values(doc, path: str):
    cur = [doc]
    for p in path.split("."):
        nxt = []
        for c in cur:
            v = c.get(p) if isinstance(c, dict) else None
            if isinstance(v, list):
                nxt.extend(v)
            elif v is not None:
                nxt.append(v)
        cur = nxt
    return [str(v).lower() if not isinstance(v, bool) else str(v).lower() for v in cur]


def _unescape(v: str) -> str:
    return re.sub(r"\\(.)", r"\1", v)


def search_matcher(q: str):
    q = (q or "").strip()
    if q in ("", "*"):
        return lambda d: True

    def term(t: str):
        t = t.strip()
        neg = t.startswith("-") or t.startswith("NOT ")
        t = t[4:] if t.startswith("NOT ") else t.lstrip("-")
        m = re.match(r"^([A-Za-z_.]+):(.*)$", t)
        field, value = (m.group(1), m.group(2)) if m else (None, t)
        if field and field.endswith(".keyword"):
            field = field[: -len(".keyword")]
        quoted = len(value) >= 2 and value[0] == value[-1] == '"'
        value = _unescape(value[1:-1] if quoted else value).lower()
        wildcard = not quoted and ("*" in value or "?" in value)

        def match(d):
            if field:
                vals = _values(d, field)
                hit = any(fnmatch.fnmatchcase(v, value) if wildcard else v == value for v in vals)
            else:
                vals = _values(d, "name") + _values(d, "fullyQualifiedName") + _values(d, "description")
                hit = any(fnmatch.fnmatchcase(v, value) if wildcard else value in v for v in vals)
            return hit != neg
        return match

    clauses = [[term(t) for t in re.split(r"\s+OR\s+", c)] for c in re.split(r"\s+AND\s+", q)]
    return lambda d: all(any(m(d) for m in ors) for ors in clauses)


class App:
    def __init__(self, store: Store, validator: Validator, token: str | None, readonly_token: str | None):
        self.store = store
        self.validator = validator
        self.token = token
        self.readonly_token = readonly_token
        self.routes: list[tuple[str, re.Pattern, object]] = []
        self.requests = 0
        self.rejected = 0
        R = self.route
        R("GET", r"/api/v1/system/version", self.version)
        R("GET", r"/api/v1/tables", self.list_tables)
        R("PUT", r"/api/v1/tables/restore", self.restore_table)
        R("GET", r"/api/v1/tables/name/(?P<fqn>[^/]+)", self.get_table_by_name)
        R("DELETE", r"/api/v1/tables/name/(?P<fqn>[^/]+)", self.delete_table_by_name)
        R("GET", r"/api/v1/tables/(?P<id>[0-9a-f-]{36})", self.get_table)
        R("DELETE", r"/api/v1/tables/(?P<id>[0-9a-f-]{36})", self.delete_table)
        R("GET", r"/api/v1/databases", self.list_databases)
        R("GET", r"/api/v1/databases/name/(?P<fqn>[^/]+)", self.get_database)
        R("GET", r"/api/v1/services/databaseServices", self.list_db_services)
        R("GET", r"/api/v1/services/databaseServices/name/(?P<name>[^/]+)", self.get_db_service)
        R("DELETE", r"/api/v1/services/databaseServices/name/(?P<name>[^/]+)", self.delete_db_service)
        R("GET", r"/api/v1/search/query", self.search)
        R("PUT", r"/api/v1/services/pipelineServices", self.put_pipeline_service)
        R("GET", r"/api/v1/services/pipelineServices", self.list_pipeline_services)
        R("GET", r"/api/v1/services/pipelineServices/name/(?P<name>[^/]+)", self.get_pipeline_service)
        R("GET", r"/api/v1/services/pipelineServices/(?P<id>[0-9a-f-]{36})", self.get_pipeline_service)
        R("PUT", r"/api/v1/pipelines", self.put_pipeline)
        R("GET", r"/api/v1/pipelines", self.list_pipelines)
        R("PUT", r"/api/v1/pipelines/(?P<fqn>[^/]+)/status", self.put_status)
        R("GET", r"/api/v1/pipelines/(?P<fqn>[^/]+)/status", self.get_status)
        R("GET", r"/api/v1/pipelines/name/(?P<fqn>[^/]+)", self.get_pipeline)
        R("GET", r"/api/v1/pipelines/(?P<id>[0-9a-f-]{36})", self.get_pipeline)
        R("PUT", r"/api/v1/lineage", self.put_lineage)
        R("GET", r"/api/v1/lineage/(?P<etype>[A-Za-z]+)/name/(?P<fqn>[^/]+)", self.get_lineage)
        R("GET", r"/api/v1/lineage/(?P<etype>[A-Za-z]+)/(?P<id>[0-9a-f-]{36})", self.get_lineage)
        R("PATCH", r"/api/v1/lineage/(?P<ft>[A-Za-z]+)/(?P<fid>[0-9a-f-]{36})/(?P<tt>[A-Za-z]+)/(?P<tid>[0-9a-f-]{36})",
          self.patch_lineage)
        R("DELETE", r"/api/v1/lineage/(?P<ft>[A-Za-z]+)/(?P<fid>[0-9a-f-]{36})/(?P<tt>[A-Za-z]+)/(?P<tid>[0-9a-f-]{36})",
          self.delete_lineage)
        R("DELETE", r"/api/v1/lineage/(?P<ft>[A-Za-z]+)/name/(?P<ff>[^/]+)/(?P<tt>[A-Za-z]+)/name/(?P<tf>[^/]+)",
          self.delete_lineage)
        R("PUT", r"/api/v1/classifications", self.put_classification)
        R("GET", r"/api/v1/classifications", self.list_classifications)
        R("GET", r"/api/v1/classifications/name/(?P<name>[^/]+)", self.get_classification)
        R("PUT", r"/api/v1/tags", self.put_tag)
        R("GET", r"/api/v1/tags", self.list_tags)
        R("GET", r"/api/v1/tags/name/(?P<fqn>[^/]+)", self.get_tag)
        R("GET", r"/api/v1/(?P<etype>users|teams)/name/(?P<name>[^/]+)", self.get_principal)
        R("GET", r"/api/v1/events", self.events)

    def route(self, method: str, pattern: str, handler):
        self.routes.append((method, re.compile("^" + pattern + "$"), handler))

    # ---- plumbing --------------------------------------------------------------------------
    def base(self, request) -> str:
        return f"{request.scheme}://{request.host}"

    def authorize(self, request: web.Request):
        if not self.token or request.path == "/api/v1/system/version":
            return
        auth = request.headers.get("Authorization", "")
        if not auth:
            raise ApiError(401, "Not Authorized! Token not present")
        if not auth.startswith("Bearer "):
            raise ApiError(401, "Not Authorized! Token not present")
        token = auth[len("Bearer "):].strip()
        if token == self.token:
            return
        if self.readonly_token and token == self.readonly_token:
            if request.method != "GET":
                raise ApiError(403, "Principal: CatalogPrincipal{name='readonly-bot'} operations [EditAll] not allowed")
            return
        raise ApiError(401, "Not Authorized! Invalid token")

    async def dispatch(self, request: web.Request) -> web.Response:
        self.requests += 1
        path = request.raw_path.split("?", 1)[0].rstrip("/") or "/"
        methods = set()
        for method, pattern, handler in self.routes:
            m = pattern.match(path)
            if not m:
                continue
            methods.add(method)
            if method != request.method:
                continue
            self.authorize(request)
            params = {k: unquote(v) for k, v in m.groupdict().items()}
            return await handler(request, **params)
        if methods:
            return error(405, "HTTP 405 Method Not Allowed")
        return error(404, "HTTP 404 Not Found")

    async def body(self, request: web.Request, schema: str | None, content_type=JSON):
        if request.content_type != content_type:
            raise ApiError(415, "HTTP 415 Unsupported Media Type")
        raw = await request.read()
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ApiError(400, "Unable to process JSON")
        if schema:
            problems = self.validator.validate(schema, doc)
            if problems:
                self.rejected += 1
                log.info("400 %s %s: %s", schema, problems[0].path, problems[0].reason)
                raise ApiError(400, f"{problems[0].path}: {problems[0].reason}",
                               errors=[p.as_json() for p in problems])
        return doc

    def render_table(self, request, t: dict, fields: set) -> dict:
        out = {k: v for k, v in t.items() if k not in ("owners", "tags")}
        if "owners" in fields:
            out["owners"] = t["owners"]
        if "tags" in fields:
            out["tags"] = t["tags"]
        else:   # columns are always there (the Table schema requires them); their tags with `tags`
            out["columns"] = [strip_tags(c) for c in t["columns"]]
        out["href"] = f"{self.base(request)}/api/v1/tables/{t['id']}"
        return out

    def with_href(self, request, e: dict, collection: str) -> dict:
        return {**e, "href": f"{self.base(request)}/api/v1/{collection}/{e['id']}"}

    # ---- system ----------------------------------------------------------------------------
    async def version(self, request):
        return jresp({"version": VERSION, "revision": "contract", "timestamp": int(time.time() * 1000)})

    # ---- tables ----------------------------------------------------------------------------
    async def list_tables(self, request):
        q = request.query
        fields = fields_param(q, TABLE_FIELDS)
        include = include_param(q)
        keys = self.store.sorted_tables()
        prefix = q.get("databaseSchema") or q.get("database")
        if prefix:
            lo = bisect.bisect_left(keys, prefix + ".")
            hi = bisect.bisect_left(keys, prefix + "." + _END)
            keys = keys[lo:hi]
            if q.get("database") and q.get("databaseSchema") and not q["databaseSchema"].startswith(q["database"] + "."):
                keys = []
        tables = self.store.tables
        if include != "all":
            keys = [k for k in keys if included(tables[k], include)]
        chosen, paging = page(keys, q)
        return jresp({"data": [self.render_table(request, tables[k], fields) for k in chosen], "paging": paging})

    def _table(self, q, t: dict | None, key: str) -> dict:
        if t is None or not included(t, include_param(q)):
            raise not_found("table", key)
        return t

    async def get_table(self, request, id):
        q = request.query
        t = self._table(q, self.store.table_by_id(id), id)
        return jresp(self.render_table(request, t, fields_param(q, TABLE_FIELDS)))

    async def get_table_by_name(self, request, fqn):
        q = request.query
        t = self._table(q, self.store.tables.get(fqn), fqn)
        return jresp(self.render_table(request, t, fields_param(q, TABLE_FIELDS)))

    async def _delete_table(self, request, t: dict | None, key: str):
        hard = request.query.get("hardDelete", "false").lower() == "true"
        if t is None:
            raise not_found("table", key)
        self.store.write("tables_delete", {"fqns": [t["fullyQualifiedName"]], "hardDelete": hard})
        return jresp(self.render_table(request, t, set()))

    async def delete_table(self, request, id):
        return await self._delete_table(request, self.store.table_by_id(id), id)

    async def delete_table_by_name(self, request, fqn):
        return await self._delete_table(request, self.store.tables.get(fqn), fqn)

    async def restore_table(self, request):
        doc = await self.body(request, None)
        if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
            raise ApiError(400, "[id must not be null]")
        t = self.store.write("table_restore", {"id": doc["id"]})
        return jresp(self.render_table(request, t, set()))

    # ---- databases and database services ---------------------------------------------------
    async def list_databases(self, request):
        q = request.query
        include = include_param(q)
        svc = q.get("service")
        dbs = self.store.databases
        keys = sorted(k for k, d in dbs.items()
                      if included(d, include) and (not svc or d["service"]["fullyQualifiedName"] == FQN.quote_name(svc)))
        chosen, paging = page(keys, q)
        return jresp({"data": [self.with_href(request, dbs[k], "databases") for k in chosen], "paging": paging})

    async def get_database(self, request, fqn):
        d = self.store.databases.get(fqn)
        if d is None or not included(d, include_param(request.query)):
            raise not_found("database", fqn)
        return jresp(self.with_href(request, d, "databases"))

    async def list_db_services(self, request):
        q = request.query
        include = include_param(q)
        pool = self.store.db_services
        keys = sorted(k for k, s in pool.items() if included(s, include))
        chosen, paging = page(keys, q)
        return jresp({"data": [self.with_href(request, pool[k], "services/databaseServices") for k in chosen],
                      "paging": paging})

    async def get_db_service(self, request, name):
        s = self.store.db_services.get(name)
        if s is None or not included(s, include_param(request.query)):
            raise not_found("databaseService", name)
        return jresp(self.with_href(request, s, "services/databaseServices"))

    async def delete_db_service(self, request, name):
        q = request.query
        svc = self.store.db_services.get(name)
        args = {"name": name, "hardDelete": q.get("hardDelete", "false").lower() == "true",
                "recursive": q.get("recursive", "false").lower() == "true"}
        self.store.write("database_service_delete", args)
        if svc is None:
            raise not_found("databaseService", name)
        return jresp(self.with_href(request, svc, "services/databaseServices"))

    # ---- search ----------------------------------------------------------------------------
    async def search(self, request):
        q = request.query
        index = q.get("index", "table_search_index")
        frm = int_param(q, "from", 0)
        size = int_param(q, "size", 10, 0, 10000)
        deleted = q.get("deleted", "false").lower() == "true"
        if index in ("table_search_index", "table"):
            pool, etype = self.store.tables, "table"
        elif index in ("pipeline_search_index", "pipeline"):
            pool, etype = self.store.pipelines, "pipeline"
        else:
            raise ApiError(400, f"Unsupported search index {index} (contract server: table_search_index, "
                                "pipeline_search_index)")
        match = search_matcher(q.get("q", "*"))
        hits = []
        for k in sorted(pool):
            e = pool[k]
            if e.get("deleted", False) != deleted:
                continue
            doc = {**e, "entityType": etype}
            if match(doc):
                hits.append(doc)
        chosen = hits[frm:frm + size]
        full = f"{index}" if index.endswith("_search_index") else f"{index}_search_index"
        return jresp({
            "took": 1, "timed_out": False,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {"total": {"value": len(hits), "relation": "eq"}, "max_score": 1.0 if hits else None,
                     "hits": [{"_index": full, "_id": d["id"], "_score": 1.0, "_source": d} for d in chosen]},
        })

    # ---- pipeline services and pipelines ----------------------------------------------------
    async def put_pipeline_service(self, request):
        doc = await self.body(request, "CreatePipelineServiceRequest")
        e, created = self.store.write("pipeline_service_put", doc)
        return jresp(self.with_href(request, e, "services/pipelineServices"), 201 if created else 200)

    async def list_pipeline_services(self, request):
        q = request.query
        include = include_param(q)
        pool = self.store.pipeline_services
        keys = sorted(k for k, s in pool.items() if included(s, include))
        chosen, paging = page(keys, q)
        return jresp({"data": [self.with_href(request, pool[k], "services/pipelineServices") for k in chosen],
                      "paging": paging})

    async def get_pipeline_service(self, request, name=None, id=None):
        pool = self.store.pipeline_services
        s = pool.get(name) if name is not None else next((x for x in pool.values() if x["id"] == id), None)
        if s is None or not included(s, include_param(request.query)):
            raise not_found("pipelineService", name or id)
        return jresp(self.with_href(request, s, "services/pipelineServices"))

    def render_pipeline(self, request, p: dict, fields: set) -> dict:
        out = {k: v for k, v in p.items() if k not in ("tasks", "tags", "owners")}
        for f in ("tasks", "tags", "owners"):
            if f in fields:
                out[f] = p.get(f, [])
        if "pipelineStatus" in fields:
            st = self.store.statuses.get(p["fullyQualifiedName"])
            if st:
                out["pipelineStatus"] = st[max(st)]
        out["href"] = f"{self.base(request)}/api/v1/pipelines/{p['id']}"
        return out

    async def put_pipeline(self, request):
        doc = await self.body(request, "CreatePipelineRequest")
        p, created = self.store.write("pipeline_put", doc)
        return jresp(self.render_pipeline(request, p, {"tasks", "tags", "owners"}), 201 if created else 200)

    async def list_pipelines(self, request):
        q = request.query
        include = include_param(q)
        fields = fields_param(q, PIPELINE_FIELDS)
        svc = q.get("service")
        pool = self.store.pipelines
        keys = sorted(k for k, p in pool.items()
                      if included(p, include) and (not svc or p["service"]["fullyQualifiedName"] == svc))
        chosen, paging = page(keys, q)
        return jresp({"data": [self.render_pipeline(request, pool[k], fields) for k in chosen], "paging": paging})

    async def get_pipeline(self, request, fqn=None, id=None):
        q = request.query
        pool = self.store.pipelines
        p = pool.get(fqn) if fqn is not None else next((x for x in pool.values() if x["id"] == id), None)
        if p is None or not included(p, include_param(q)):
            raise not_found("pipeline", fqn or id)
        return jresp(self.render_pipeline(request, p, fields_param(q, PIPELINE_FIELDS)))

    async def put_status(self, request, fqn):
        doc = await self.body(request, "PipelineStatus")
        p = self.store.write("pipeline_status_put", {"fqn": fqn, "status": doc})
        return jresp(self.render_pipeline(request, p, {"tasks", "pipelineStatus"}))

    async def get_status(self, request, fqn):
        q = request.query
        for name in ("startTs", "endTs"):
            if not q.get(name):
                raise ApiError(400, f"[query param {name} must not be null]")
        start, end = int_param(q, "startTs", 0, None), int_param(q, "endTs", 0, None)
        if fqn not in self.store.pipelines:
            raise not_found("pipeline", fqn)
        st = self.store.statuses.get(fqn, {})
        data = [st[ts] for ts in sorted(st, reverse=True) if start <= ts <= end]
        return jresp({"data": data, "paging": {"total": len(data)}})

    # ---- lineage ---------------------------------------------------------------------------
    async def put_lineage(self, request):
        doc = await self.body(request, "AddLineageRequest")
        self.store.write("lineage_put", doc)
        return web.Response(status=200)

    async def get_lineage(self, request, etype, fqn=None, id=None):
        q = request.query
        e = (self.store.entity_by_name(etype, fqn) if fqn is not None else self.store.entity_by_id(etype, id))
        if e is None or e.get("deleted"):
            raise not_found(etype, fqn or id)
        up = int_param(q, "upstreamDepth", 1, 0, 3)
        down = int_param(q, "downstreamDepth", 1, 0, 3)
        return jresp(self.store.lineage(etype, e, up, down))

    async def patch_lineage(self, request, ft, fid, tt, tid):
        patch = await self.body(request, None, JSON_PATCH)
        edge = self.store.edges.get((fid, tid))
        if edge is None or edge["fromEntity"]["type"] != ft or edge["toEntity"]["type"] != tt:
            raise ApiError(404, f"Lineage edge not found between {ft} {fid} and {tt} {tid}")
        from .store import apply_json_patch
        current = edge.get("lineageDetails") or {}
        # the server-managed fields are not part of the request model
        details = apply_json_patch(current, patch)
        check = {k: v for k, v in details.items()}
        problems = self.validator.validate("LineageDetails", check)
        if problems:
            raise ApiError(400, f"{problems[0].path}: {problems[0].reason}", errors=[p.as_json() for p in problems])
        edge = self.store.write("lineage_patch", {"fromType": ft, "fromId": fid, "toType": tt, "toId": tid,
                                                  "details": details})
        return jresp(edge)

    async def delete_lineage(self, request, ft, tt, fid=None, tid=None, ff=None, tf=None):
        if ff is not None:
            fe, te = self.store.entity_by_name(ft, ff), self.store.entity_by_name(tt, tf)
            if fe is None:
                raise not_found(ft, ff)
            if te is None:
                raise not_found(tt, tf)
            fid, tid = fe["id"], te["id"]
        self.store.write("lineage_delete", {"fromType": ft, "fromId": fid, "toType": tt, "toId": tid})
        return web.Response(status=200)

    # ---- classifications, tags, users ------------------------------------------------------
    async def put_classification(self, request):
        doc = await self.body(request, "CreateClassificationRequest")
        e, created = self.store.write("classification_put", doc)
        return jresp(self.with_href(request, e, "classifications"), 201 if created else 200)

    async def list_classifications(self, request):
        q = request.query
        pool = self.store.classifications
        keys = sorted(k for k, e in pool.items() if included(e, include_param(q)))
        chosen, paging = page(keys, q)
        return jresp({"data": [self.with_href(request, pool[k], "classifications") for k in chosen], "paging": paging})

    async def get_classification(self, request, name):
        e = self.store.classifications.get(name)
        if e is None or not included(e, include_param(request.query)):
            raise not_found("classification", name)
        return jresp(self.with_href(request, e, "classifications"))

    async def put_tag(self, request):
        doc = await self.body(request, "CreateTagRequest")
        e, created = self.store.write("tag_put", doc)
        return jresp(self.with_href(request, e, "tags"), 201 if created else 200)

    async def list_tags(self, request):
        q = request.query
        parent = q.get("parent")
        pool = self.store.tags
        keys = sorted(k for k, e in pool.items() if included(e, include_param(q))
                      and (not parent or k.startswith(parent + ".")))
        chosen, paging = page(keys, q)
        return jresp({"data": [self.with_href(request, pool[k], "tags") for k in chosen], "paging": paging})

    async def get_tag(self, request, fqn):
        e = self.store.tags.get(fqn)
        if e is None or not included(e, include_param(request.query)):
            raise not_found("tag", fqn)
        return jresp(self.with_href(request, e, "tags"))

    async def get_principal(self, request, etype, name):
        kind = etype[:-1]
        p = self.store.principals.get((kind, name))
        if p is None:
            raise not_found(kind, name)
        return jresp(self.with_href(request, p, etype))

    # ---- change events ---------------------------------------------------------------------
    async def events(self, request):
        """GET /api/v1/events (EventResource.get): `timestamp` is a primitive long (0 when absent);
        entityCreated/entityUpdated/entityRestored/entityDeleted are comma-separated entity types
        (`*` = all), entityDeleted covering hard and soft deletes; oldest first; no paging cursors."""
        q = request.query
        ts = int_param(q, "timestamp", 0, None)
        wanted: dict[str, set] = {}
        for param, kinds in (("entityCreated", ("entityCreated",)), ("entityUpdated", ("entityUpdated",)),
                             ("entityRestored", ("entityRestored",)),
                             ("entityDeleted", ("entityDeleted", "entitySoftDeleted"))):
            for etype in filter(None, (t.strip() for t in (q.get(param) or "").split(","))):
                for kind in kinds:
                    wanted.setdefault(kind, set()).add(etype)
        data = self.store.events_since(ts, wanted)
        return jresp({"data": data, "paging": {"total": len(data)}})

    # ---- contract-only admin (no auth, not OpenMetadata) ------------------------------------
    async def admin_write(self, request, op: str):
        raw = await request.read()
        try:
            doc = orjson.loads(raw or b"{}")
        except orjson.JSONDecodeError:
            raise ApiError(400, "Unable to process JSON")
        if not isinstance(doc, dict):
            raise ApiError(400, "the body must be a JSON object")
        return jresp(self.store.write(op, doc))

    async def info(self, request):
        st = self.store
        return jresp({
            "kind": "contract", "version": VERSION, "specDir": self.validator.spec_dir, "journal": st.path,
            "auth": bool(self.token), "requests": self.requests, "rejected": self.rejected,
            "tables": len(st.tables), "liveTables": sum(1 for t in st.tables.values() if not t["deleted"]),
            "databaseServices": len(st.db_services), "pipelines": len(st.pipelines), "edges": len(st.edges),
        })


def strip_tags(c: dict) -> dict:
    out = {k: v for k, v in c.items() if k != "tags"}
    if c.get("children"):
        out["children"] = [strip_tags(x) for x in c["children"]]
    return out


@web.middleware
async def errors(request, handler):
    try:
        return await handler(request)
    except ApiError as e:
        return error(e.status, e.message, **e.extra)
    except web.HTTPException as e:
        return error(e.status, f"HTTP {e.status} {e.reason}")
    except Exception:  # noqa: BLE001
        log.exception("internal error on %s %s", request.method, request.path)
        return error(500, "An exception with message [internal error] was thrown while processing request.")


def build_app(store: Store, validator: Validator, token=None, readonly_token=None) -> web.Application:
    a = App(store, validator, token, readonly_token)
    app = web.Application(middlewares=[errors], client_max_size=64 * 1024 * 1024)
    app["contract"] = a
    r = app.router
    r.add_post("/contract/tables/bulk", lambda req: a.admin_write(req, "tables_bulk"))
    r.add_post("/contract/tables", lambda req: a.admin_write(req, "tables_upsert"))
    r.add_post("/contract/tables/delete", lambda req: a.admin_write(req, "tables_delete"))
    r.add_post("/contract/principals", lambda req: a.admin_write(req, "principals_put"))
    r.add_post("/contract/events/purge", lambda req: a.admin_write(req, "events_purge"))
    r.add_get("/contract/info", a.info)
    r.add_route("*", "/api/{tail:.*}", a.dispatch)
    return app


async def serve(args) -> None:
    validator = Validator(args.spec_dir)
    store = Store(args.journal)
    log.info("journal %s: replayed %d writes (%d tables)", args.journal, store.replayed, len(store.tables))
    runner = web.AppRunner(build_app(store, validator, args.jwt_token, args.readonly_token),
                           access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port, backlog=1024).start()
    log.info("OpenMetadata CONTRACT server on http://%s:%d (auth %s), schemas %s",
             args.host, args.port, "on" if args.jwt_token else "off", validator.spec_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    await runner.cleanup()
    store.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="openmetadata_contract", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--journal", required=True, help="append-only JSON-lines state file")
    p.add_argument("--spec-dir", default=None,
                   help="OpenMetadata schemas (default: $OPENMETADATA_SPEC_DIR or <repo>/../shared/openmetadata-spec)")
    p.add_argument("--jwt-token", default=None, help="require 'Authorization: Bearer <token>' on /api")
    p.add_argument("--readonly-token", default=None, help="a second token allowed to read only (403 on writes)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_server(serve, args, "openmetadata_contract")
