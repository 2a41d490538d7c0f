"""Tests of the Marquez contract server itself: a real server process on a free loopback port.

Run: testbed/.venv/bin/python -m pytest -q testbed/marquez_contract/test_contract.py
"""
from __future__ import annotations

import gzip
import json
import os
import sys
import urllib.parse
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TESTBED = os.path.dirname(HERE)
sys.path.insert(0, TESTBED)
from contract_common.testing import ServerProcess, http_json  # noqa: E402

CORE = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
PRODUCER = "https://github.com/example/lineage-bus/tests"
SCHEMA_FACET = "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"
PG = "postgres://db.example:5432"


class Server(ServerProcess):
    module = "marquez_contract"
    ready_path = "/api/v1/namespaces"

    def request(self, method, path, body: bytes | None = None, headers=None):
        return http_json(self.url + path, method, body, headers or {}, 10)

    def get(self, path):
        return self.request("GET", path)

    def post(self, event, gz=False):
        body = json.dumps(event).encode()
        headers = {"Content-Type": "application/json"}
        if gz:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        return self.request("POST", "/api/v1/lineage", body, headers)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    journal = str(tmp_path_factory.mktemp("marquez") / "marquez.jsonl")
    s = Server(journal).start()
    yield s
    s.stop()


def run_event(event_type, run_id, job, t, inputs=(), outputs=(), run_facets=None, ns="lb-test"):
    return {
        "eventType": event_type,
        "eventTime": t,
        "producer": PRODUCER,
        "schemaURL": f"{CORE}#/$defs/RunEvent",
        "run": {"runId": run_id, "facets": run_facets or {}},
        "job": {"namespace": ns, "name": job, "facets": {}},
        "inputs": list(inputs),
        "outputs": list(outputs),
    }


def ds(name, fields=None, **extra):
    d = {"namespace": PG, "name": name, "facets": {}}
    if fields is not None:
        d["facets"]["schema"] = {"_producer": PRODUCER, "_schemaURL": SCHEMA_FACET, "fields": fields}
    d.update(extra)
    return d


def q(s):
    return urllib.parse.quote(s, safe="")


def test_run_lifecycle_visible_everywhere(server):
    r1 = str(uuid.uuid4())
    src = ds("shop.public.orders", [{"name": "id", "type": "INTEGER"}, {"name": "amount", "type": "NUMERIC"}])
    dst = ds("shop.public.daily")
    assert server.post(run_event("START", r1, "daily_totals", "2026-01-01T10:00:00Z", [src], [dst])) == (201, None)
    assert server.post(run_event("COMPLETE", r1, "daily_totals", "2026-01-01T10:00:05.250Z", [src], [dst]))[0] == 201

    status, body = server.get("/api/v1/namespaces")
    names = [n["name"] for n in body["namespaces"]]
    assert status == 200 and {"default", "lb-test", PG} <= set(names)
    assert set(body["namespaces"][0]) == {"name", "createdAt", "updatedAt", "ownerName", "description", "isHidden"}

    status, body = server.get("/api/v1/namespaces/lb-test/jobs")
    assert status == 200 and body["totalCount"] == 1
    job = body["jobs"][0]
    assert job["id"] == {"namespace": "lb-test", "name": "daily_totals"} and job["type"] == "BATCH"
    assert job["inputs"] == [{"namespace": PG, "name": "shop.public.orders"}]
    assert job["outputs"] == [{"namespace": PG, "name": "shop.public.daily"}]
    latest = job["latestRun"]
    assert latest["id"] == r1 and latest["state"] == "COMPLETED"
    assert latest["startedAt"] == "2026-01-01T10:00:00Z" and latest["endedAt"] == "2026-01-01T10:00:05.250Z"
    assert latest["durationMs"] == 5250

    # a second run, failed: runs come newest first, the job shows the latest
    r2 = str(uuid.uuid4())
    assert server.post(run_event("START", r2, "daily_totals", "2026-01-02T10:00:00Z", [src], [dst]))[0] == 201
    assert server.post(run_event("FAIL", r2, "daily_totals", "2026-01-02T10:00:01Z", [src], [dst]))[0] == 201
    status, body = server.get("/api/v1/namespaces/lb-test/jobs/daily_totals/runs")
    assert status == 200 and [r["id"] for r in body["runs"]] == [r2, r1]
    assert [r["state"] for r in body["runs"]] == ["FAILED", "COMPLETED"]
    assert server.get("/api/v1/namespaces/lb-test/jobs/daily_totals")[1]["latestRun"]["id"] == r2
    status, run = server.get(f"/api/v1/runs/{r1}")
    assert status == 200 and run["state"] == "COMPLETED" and run["jobVersion"]["name"] == "daily_totals"

    status, body = server.get(f"/api/v1/namespaces/{q(PG)}/datasets/shop.public.orders")
    assert status == 200 and [f["name"] for f in body["fields"]] == ["id", "amount"]
    assert body["facets"]["schema"]["fields"][1]["type"] == "NUMERIC"
    assert server.get(f"/api/v1/namespaces/{q(PG)}/datasets")[1]["totalCount"] >= 2

    for node in ("job:lb-test:daily_totals", f"dataset:{PG}:shop.public.orders"):
        status, body = server.get("/api/v1/lineage?" + urllib.parse.urlencode({"nodeId": node, "depth": 5}))
        assert status == 200, body
        graph = {n["id"]: n for n in body["graph"]}
        jid, src_id, dst_id = "job:lb-test:daily_totals", f"dataset:{PG}:shop.public.orders", f"dataset:{PG}:shop.public.daily"
        assert set(graph) == {jid, src_id, dst_id}
        assert graph[jid]["type"] == "JOB" and graph[src_id]["type"] == "DATASET"
        assert graph[jid]["inEdges"] == [{"origin": src_id, "destination": jid}]
        assert graph[jid]["outEdges"] == [{"origin": jid, "destination": dst_id}]
        assert graph[dst_id]["inEdges"] == [{"origin": jid, "destination": dst_id}]


def test_events_list_keeps_duplicates_and_gzip(server):
    before = server.get("/api/v1/events/lineage?limit=1")[1]["totalCount"]
    rid = str(uuid.uuid4())
    ev = run_event("START", rid, "dup_job", "2026-01-03T00:00:00Z")
    assert server.post(ev)[0] == 201
    assert server.post(ev, gz=True)[0] == 201
    body = server.get("/api/v1/events/lineage?limit=2")[1]
    assert body["totalCount"] == before + 2
    assert [e["run"]["runId"] for e in body["events"]] == [rid, rid]


def test_bad_run_id_is_422_naming_the_path(server):
    status, body = server.post(run_event("START", "not-a-uuid", "bad", "2026-01-01T00:00:00Z"))
    assert status == 422
    assert body["code"] == 422 and "run.runId" in body["message"]
    assert any(e["path"] == "run.runId" for e in body["errors"])


def test_facet_violating_its_schema_is_422(server):
    bad = ds("shop.public.bad")
    bad["facets"]["schema"] = {"_producer": PRODUCER, "_schemaURL": SCHEMA_FACET, "fields": "id,amount"}
    status, body = server.post(run_event("START", str(uuid.uuid4()), "bad_facet", "2026-01-01T00:00:00Z", [bad]))
    assert status == 422
    assert body["errors"][0]["path"] == "inputs[0].facets.schema.fields"
    assert "SchemaDatasetFacet" in body["errors"][0]["reason"]
    # a facet without _producer/_schemaURL (custom key: checked against the core base of its position)
    ev = run_event("START", str(uuid.uuid4()), "bad_facet", "2026-01-01T00:00:00Z",
                   run_facets={"myCustom": {"whatever": 1}})
    status, body = server.post(ev)
    assert status == 422 and body["errors"][0]["path"].startswith("run.facets.myCustom")


def test_facet_schema_depends_on_position(server):
    subset_url = "https://openlineage.io/spec/facets/1-0-0/BaseSubsetDatasetFacet.json#/$defs/OutputSubsetOutputDatasetFacet"
    subset = {"_producer": PRODUCER, "_schemaURL": subset_url,
              "outputCondition": {"type": "location", "locations": ["s3://b/p=1"]}}
    ok = run_event("START", str(uuid.uuid4()), "subset_job", "2026-01-01T00:00:00Z",
                   outputs=[ds("out.t", outputFacets={"subset": subset})])
    assert server.post(ok)[0] == 201
    wrong = run_event("START", str(uuid.uuid4()), "subset_job", "2026-01-01T00:00:00Z",
                      inputs=[ds("in.t", inputFacets={"subset": subset})])
    status, body = server.post(wrong)
    assert status == 422 and body["errors"][0]["path"].startswith("inputs[0].inputFacets.subset")


def test_schema_url_picks_the_kind(server):
    ev = run_event("START", str(uuid.uuid4()), "x", "2026-01-01T00:00:00Z")
    ev["schemaURL"] = CORE
    status, body = server.post(ev)
    assert status == 422 and body["errors"][0]["path"] == "schemaURL"
    assert server.request("POST", "/api/v1/lineage", b"{not json", {"Content-Type": "application/json"})[0] == 400


def test_dataset_event_and_job_event(server):
    dataset_event = {
        "eventTime": "2026-01-04T00:00:00Z", "producer": PRODUCER, "schemaURL": f"{CORE}#/$defs/DatasetEvent",
        "dataset": ds("static.only", [{"name": "k", "type": "TEXT"}]),
    }
    assert server.post(dataset_event)[0] == 201
    status, body = server.get(f"/api/v1/namespaces/{q(PG)}/datasets/static.only")
    assert status == 200 and body["fields"][0]["name"] == "k"

    job_event = {
        "eventTime": "2026-01-04T00:00:00Z", "producer": PRODUCER, "schemaURL": f"{CORE}#/$defs/JobEvent",
        "job": {"namespace": "lb-static", "name": "declared"},
        "inputs": [ds("static.only")], "outputs": [ds("static.out")],
    }
    assert server.post(job_event)[0] == 201
    status, job = server.get("/api/v1/namespaces/lb-static/jobs/declared")
    assert status == 200 and job["latestRun"] is None
    assert job["outputs"] == [{"namespace": PG, "name": "static.out"}]
    # a JobEvent must not carry a run
    job_event["run"] = {"runId": str(uuid.uuid4())}
    assert server.post(job_event)[0] == 422


def test_parent_run_facet_names_the_child(server):
    parent_run, child_run = str(uuid.uuid4()), str(uuid.uuid4())
    assert server.post(run_event("START", parent_run, "pipeline", "2026-01-05T00:00:00Z", ns="lb-parent"))[0] == 201
    parent = {
        "_producer": PRODUCER,
        "_schemaURL": "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet",
        "run": {"runId": parent_run}, "job": {"namespace": "lb-parent", "name": "pipeline"},
    }
    ev = run_event("START", child_run, "step_a", "2026-01-05T00:00:01Z", run_facets={"parent": parent}, ns="lb-parent")
    assert server.post(ev)[0] == 201
    status, job = server.get("/api/v1/namespaces/lb-parent/jobs/pipeline.step_a")
    assert status == 200
    assert job["simpleName"] == "step_a" and job["parentJobName"] == "pipeline"


def test_unknown_paths_are_dropwizard_404(server):
    assert server.get("/api/v1/nothing") == (404, {"code": 404, "message": "HTTP 404 Not Found"})
    status, body = server.get("/api/v1/namespaces/no-such-ns/jobs")
    assert status == 404 and body["code"] == 404
    assert server.get("/api/v1/lineage?nodeId=job:lb-test:missing")[0] == 404


def test_restart_keeps_state(tmp_path):
    s = Server(str(tmp_path / "j.jsonl")).start()
    rid = str(uuid.uuid4())
    try:
        assert s.post(run_event("START", rid, "durable", "2026-01-06T00:00:00Z", [ds("a")], [ds("b")]))[0] == 201
        assert s.post(run_event("COMPLETE", rid, "durable", "2026-01-06T00:00:02Z", [ds("a")], [ds("b")]))[0] == 201
        before = s.get("/api/v1/namespaces/lb-test/jobs/durable")[1]
        events_before = s.get("/api/v1/events/lineage")[1]
    finally:
        s.stop()
    s2 = Server(s.journal).start()
    try:
        assert s2.get("/api/v1/namespaces/lb-test/jobs/durable")[1] == before
        assert s2.get("/api/v1/events/lineage")[1] == events_before
        assert s2.get(f"/api/v1/runs/{rid}")[1]["state"] == "COMPLETED"
    finally:
        s2.stop()
