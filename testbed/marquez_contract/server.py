"""Marquez contract server: the Marquez HTTP API surface lineage-bus uses, validating every
OpenLineage event against the official 2-0-2 JSON Schemas. See README.md beside this file.

Run: PYTHONPATH=testbed python -m marquez_contract --port 15000 --journal /path/marquez.jsonl
"""
from __future__ import annotations

import argparse
import asyncio
import gzip
import logging
import signal
from urllib.parse import unquote

import orjson
from aiohttp import web

from .store import Store, fmt_namespace, parse_time
from contract_common import run_server

from .validate import EventValidator

log = logging.getLogger("marquez_contract")

JSON = "application/json"


def jresp(obj, status=200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type=JSON)


def error(status: int, message: str, **extra) -> web.Response:
    # Dropwizard's error body: {"code": N, "message": "..."}
    return jresp({"code": status, "message": message, **extra}, status)


def not_found(message: str = "HTTP 404 Not Found") -> web.Response:
    return error(404, message)


def int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(
            body=orjson.dumps({"code": 400, "message": f"query param {name} must be an integer"}), content_type=JSON
        )
    if v < 0:
        raise web.HTTPBadRequest(
            body=orjson.dumps({"code": 400, "message": f"query param {name} must be greater than or equal to 0"}),
            content_type=JSON,
        )
    return v


def page(items: list, request: web.Request) -> list:
    limit = int_param(request, "limit", 100)
    offset = int_param(request, "offset", 0)
    return items[offset:offset + limit]


class App:
    def __init__(self, store: Store, validator: EventValidator):
        self.store = store
        self.validator = validator
        self.accepted = 0
        self.rejected = 0

    # ---- POST /api/v1/lineage ------------------------------------------------------------
    async def post_lineage(self, request: web.Request) -> web.Response:
        ctype = request.content_type
        if ctype != JSON and not ctype.endswith("+json"):
            return error(415, "HTTP 415 Unsupported Media Type")
        # aiohttp already inflates a `Content-Encoding: gzip|deflate` body (auto_decompress); decode here
        # only what is still compressed (defensive, e.g. a doubly-declared encoding).
        try:
            body = await request.read()
        except Exception as e:  # noqa: BLE001 (corrupt gzip stream)
            return error(400, f"could not read the request body: {e}")
        try:
            if body[:2] == b"\x1f\x8b":
                body = gzip.decompress(body)
        except (OSError, EOFError):
            return error(400, "could not decode the gzip request body")
        try:
            event = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            return error(400, "Unable to process JSON", detail=str(e))
        # Marquez answers 422 only when it cannot bind the body to its model; this contract server is
        # STRICTER on purpose: anything the official OpenLineage 2-0-2 schemas (core + each facet's own
        # schema, by position) reject is a 422 here, so a producer bug cannot hide behind a lenient backend.
        kind, problems = self.validator.validate(event)
        if problems:
            self.rejected += 1
            first = problems[0]
            log.info("422 %s: %s", first.path, first.reason)
            return error(
                422,
                f"{first.path}: {first.reason}",
                kind=kind,
                errors=[p.as_json() for p in problems],
            )
        self.store.record(kind, event)
        self.accepted += 1
        return web.Response(status=201)

    # ---- lineage graph -------------------------------------------------------------------
    def _parse_node(self, node_id: str):
        for prefix in ("job", "dataset"):
            if node_id.startswith(prefix + ":"):
                rest = node_id[len(prefix) + 1:]
                table = self.store.jobs if prefix == "job" else self.store.datasets
                # namespaces may contain ':' (postgres://host:5432): try every split, known ones first
                cuts = [i for i, c in enumerate(rest) if c == ":"]
                for i in cuts:
                    key = (fmt_namespace(rest[:i]), rest[i + 1:])
                    if key in table:
                        return prefix, key
                if cuts:
                    i = cuts[0]
                    return prefix, (fmt_namespace(rest[:i]), rest[i + 1:])
        return None

    async def get_lineage(self, request: web.Request) -> web.Response:
        node_id = request.query.get("nodeId")
        if not node_id:
            return error(400, "query param nodeId must not be null")
        start = self._parse_node(node_id)
        if start is None:
            return error(400, f"Invalid nodeId: {node_id!r} (expected job:<namespace>:<name> or dataset:<namespace>:<name>)")
        depth = int_param(request, "depth", 20)
        graph = self.store.lineage(start, depth)
        if graph is None:
            return not_found(f"Node '{node_id}' not found")
        return jresp({"graph": graph})

    # ---- events --------------------------------------------------------------------------
    async def get_events(self, request: web.Request) -> web.Response:
        events = self.store.events
        before, after = request.query.get("before"), request.query.get("after")
        try:
            if before:
                b = parse_time(before)
                events = [e for e in events if e[0] < b]
            if after:
                a = parse_time(after)
                events = [e for e in events if e[0] > a]
        except ValueError:
            return error(400, "before/after must be ISO-8601 date-times")
        desc = request.query.get("sortDirection", "desc").lower() != "asc"
        events = sorted(events, key=lambda e: (e[0], e[1]), reverse=desc)
        return jresp({"events": [e[2] for e in page(events, request)], "totalCount": len(events)})

    # ---- runs ----------------------------------------------------------------------------
    async def get_run(self, request: web.Request) -> web.Response:
        run_id = request.match_info["id"].lower()
        r = self.store.runs.get(run_id)
        if r is None:
            return not_found(f"Run with id '{run_id}' not found.")
        return jresp(r.json())

    # ---- /api/v1/namespaces/... (routed by hand: names may hold %2F-encoded slashes) -----
    async def namespaces(self, request: web.Request) -> web.Response:
        raw = request.raw_path.split("?", 1)[0]
        rest = raw[len("/api/v1/namespaces"):].strip("/")
        parts = [unquote(p) for p in rest.split("/")] if rest else []
        st = self.store
        if not parts:
            items = sorted(st.namespaces.values(), key=lambda n: n.name)
            return jresp({"namespaces": [n.json() for n in page(items, request)], "totalCount": len(items)})
        ns = parts[0]
        nsrow = st.namespaces.get(ns)
        if nsrow is None:
            return not_found(f"Namespace '{ns}' not found.")
        if len(parts) == 1:
            return jresp(nsrow.json())
        what = parts[1]
        if what == "jobs":
            if len(parts) == 2:
                items = sorted((j for j in st.jobs.values() if j.ns == ns), key=lambda j: j.name)
                return jresp({"jobs": [j.json() for j in page(items, request)], "totalCount": len(items)})
            j = st.jobs.get((ns, parts[2]))
            if j is None:
                return not_found(f"Job '{parts[2]}' not found.")
            if len(parts) == 3:
                return jresp(j.json())
            if len(parts) == 4 and parts[3] == "runs":
                from .store import run_order
                runs = sorted(j.runs, key=run_order)
                return jresp({"runs": [r.json() for r in page(runs, request)], "totalCount": len(runs)})
            return not_found()
        if what == "datasets":
            if len(parts) == 2:
                items = sorted((d for d in st.datasets.values() if d.ns == ns), key=lambda d: d.name)
                return jresp({"datasets": [d.json() for d in page(items, request)], "totalCount": len(items)})
            d = st.datasets.get((ns, parts[2]))
            if d is None:
                return not_found(f"Dataset '{parts[2]}' not found.")
            if len(parts) == 3:
                return jresp(d.json())
            return not_found()
        return not_found()

    async def info(self, request: web.Request) -> web.Response:
        """Contract-server only (not in Marquez): what runs here."""
        st = self.store
        return jresp({
            "kind": "contract",
            "specDir": self.validator.spec_dir,
            "facetSchemas": self.validator.facet_files,
            "journal": st.path,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "events": len(st.events),
            "jobs": len(st.jobs),
            "datasets": len(st.datasets),
            "runs": len(st.runs),
        })


@web.middleware
async def dropwizard_errors(request, handler):
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.content_type == JSON:
            raise
        return error(e.status, f"HTTP {e.status} {e.reason}")
    except Exception:  # noqa: BLE001
        log.exception("internal error on %s %s", request.method, request.path)
        return error(500, "There was an error processing your request. It has been logged.")


def build_app(store: Store, validator: EventValidator) -> web.Application:
    a = App(store, validator)
    app = web.Application(middlewares=[dropwizard_errors], client_max_size=64 * 1024 * 1024)
    app["contract"] = a
    r = app.router
    r.add_post("/api/v1/lineage", a.post_lineage)
    r.add_get("/api/v1/lineage", a.get_lineage)
    r.add_get("/api/v1/events/lineage", a.get_events)
    r.add_get("/api/v1/runs/{id}", a.get_run)
    r.add_get("/api/v1/jobs/runs/{id}", a.get_run)
    r.add_get("/api/v1/namespaces", a.namespaces)
    r.add_get("/api/v1/namespaces/{tail:.*}", a.namespaces)
    r.add_get("/contract/info", a.info)
    return app


def build_admin_app() -> web.Application:
    async def healthcheck(_):
        return jresp({"contract": {"healthy": True, "message": "Marquez contract server"}, "deadlocks": {"healthy": True}})

    async def ping(_):
        return web.Response(text="pong\n")

    app = web.Application(middlewares=[dropwizard_errors])
    app.router.add_get("/healthcheck", healthcheck)
    app.router.add_get("/ping", ping)
    return app


async def serve(args) -> None:
    validator = EventValidator(args.spec_dir)
    store = Store(args.journal)
    log.info("journal %s: replayed %d events (%d jobs, %d datasets, %d runs)",
             args.journal, store.replayed, len(store.jobs), len(store.datasets), len(store.runs))
    runners = []
    for app, port in ((build_app(store, validator), args.port), (build_admin_app(), args.admin_port)):
        if port is None:
            continue
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, args.host, port, backlog=1024).start()
        runners.append(runner)
    log.info("Marquez CONTRACT server on http://%s:%d (admin %s), OpenLineage spec %s (%d facet schemas)",
             args.host, args.port, args.admin_port, validator.spec_dir, validator.facet_files)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    for runner in runners:
        await runner.cleanup()
    store.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="marquez_contract", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--admin-port", type=int, default=None)
    p.add_argument("--journal", required=True, help="append-only JSON-lines state file (one per database)")
    p.add_argument("--spec-dir", default=None, help="OpenLineage spec dir (default: $OPENLINEAGE_SPEC_DIR or <repo>/../shared/openlineage-spec)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_server(serve, args, "marquez_contract")
