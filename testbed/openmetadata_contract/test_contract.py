"""Tests of the OpenMetadata contract server itself: a real server process on a free loopback port.

Run: testbed/.venv/bin/python -m pytest -q testbed/openmetadata_contract/test_contract.py
"""
from __future__ import annotations

import json
import os
import sys
import urllib.parse

import jsonschema_rs
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TESTBED = os.path.dirname(HERE)
sys.path.insert(0, TESTBED)
from contract_common import shared_spec_dir  # noqa: E402
from contract_common.testing import ServerProcess, http_json  # noqa: E402

TOKEN = "test-admin-token"
READONLY = "test-readonly-token"


class Server(ServerProcess):
    module = "openmetadata_contract"
    ready_path = "/api/v1/system/version"
    extra_args = ("--jwt-token", TOKEN, "--readonly-token", READONLY)

    def ready_headers(self) -> dict:
        return {"Authorization": f"Bearer {TOKEN}"}

    def call(self, method, path, body=None, token=TOKEN, ctype="application/json"):
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        headers = {"Content-Type": ctype} if data is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return http_json(self.url + path, method, data, headers, 30)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def put(self, path, body, **kw):
        return self.call("PUT", path, body, **kw)

    def admin(self, path, body):
        status, out = self.call("POST", "/contract/" + path, body, token=None)
        assert status == 200, out
        return out


def q(s: str) -> str:
    return urllib.parse.quote(s, safe="")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    journal = str(tmp_path_factory.mktemp("om") / "om.jsonl")
    s = Server(journal).start()
    s.admin("tables/bulk", {"services": ["pg", "snow", "bq"], "tables": 40, "databases": 2, "schemas": 2,
                            "columns": 4, "dottedEvery": 10})
    yield s
    s.stop()


def table_validator():
    with open(os.path.join(shared_spec_dir("OPENMETADATA_SPEC_DIR", "openmetadata-spec"), "Table.schema.json")) as fh:
        return jsonschema_rs.Draft202012Validator(json.load(fh))


def test_auth_401_without_or_with_a_wrong_token_403_for_readonly_writes(server):
    assert server.get("/api/v1/tables", token=None) == (401, {"code": 401, "message": "Not Authorized! Token not present"})
    assert server.get("/api/v1/tables", token="nope")[0] == 401
    assert server.get("/api/v1/tables?limit=1", token=READONLY)[0] == 200
    status, body = server.put("/api/v1/classifications", {"name": "X", "description": "x"}, token=READONLY)
    assert status == 403 and body["code"] == 403


def test_paging_with_cursors_covers_every_table_once_and_responses_match_the_table_schema(server):
    seen, after, pages = [], None, 0
    validator = table_validator()
    while True:
        path = "/api/v1/tables?fields=columns,tags,owners&limit=7&include=all&database=snow.db1"
        status, body = server.get(path + (f"&after={q(after)}" if after else ""))
        assert status == 200, body
        assert body["paging"]["total"] == 20
        for t in body["data"]:
            errors = list(validator.iter_errors(t))
            assert not errors, errors[0].message
        seen += [t["fullyQualifiedName"] for t in body["data"]]
        pages += 1
        after = body["paging"].get("after")
        if not after:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 20 and seen == sorted(seen)
    assert all(f.startswith("snow.db1.") for f in seen)
    # before goes back
    status, body = server.get(f"/api/v1/tables?limit=7&database=snow.db1&before={q(body['paging']['before'])}")
    assert [t["fullyQualifiedName"] for t in body["data"]] == seen[7:14]
    # limit bounds, both cursors
    assert server.get("/api/v1/tables?limit=-1")[0] == 400
    assert server.get("/api/v1/tables?after=a&before=b")[0] == 400
    assert server.get("/api/v1/tables?fields=nope")[1]["message"] == "Invalid field name nope"


def test_fqn_quoting_get_by_name_and_id_and_404_body(server):
    fqn = 'pg.db0.s0."t.00000"'
    status, t = server.get(f"/api/v1/tables/name/{q(fqn)}?fields=columns")
    assert status == 200 and t["name"] == "t.00000" and t["fullyQualifiedName"] == fqn
    assert t["columns"][2]["children"][0]["fullyQualifiedName"] == fqn + ".payload.a"
    assert "tags" not in t and "owners" not in t
    assert server.get(f"/api/v1/tables/{t['id']}")[1]["fullyQualifiedName"] == fqn
    assert server.get(f"/api/v1/tables/name/{q('pg.db0.s0.nope')}") == (
        404, {"code": 404, "message": "table instance for pg.db0.s0.nope not found"})


def test_upsert_versions_soft_and_hard_delete_and_include(server):
    spec = {"service": "pg", "database": "db0", "schema": "s9", "name": "v", "columns": [
        {"name": "id", "dataType": "BIGINT"}, {"name": "x", "dataType": "INT"}]}
    assert server.admin("tables", {"tables": [spec]}) == {"created": 1, "updated": 0, "unchanged": 0}
    assert server.admin("tables", {"tables": [spec]})["unchanged"] == 1
    t0 = server.get("/api/v1/tables/name/pg.db0.s9.v")[1]
    assert t0["version"] == 0.1
    server.admin("tables", {"tables": [{**spec, "description": "d"}]})
    t1 = server.get("/api/v1/tables/name/pg.db0.s9.v")[1]
    assert t1["version"] == 0.2 and t1["updatedAt"] >= t0["updatedAt"] and t1["id"] == t0["id"]
    server.admin("tables", {"tables": [{**spec, "description": "d", "columns": spec["columns"][:1]}]})
    assert server.get("/api/v1/tables/name/pg.db0.s9.v")[1]["version"] == 1.2  # column removed: major
    assert server.call("DELETE", "/api/v1/tables/name/pg.db0.s9.v")[0] == 200
    assert server.get("/api/v1/tables/name/pg.db0.s9.v")[0] == 404
    deleted = server.get("/api/v1/tables/name/pg.db0.s9.v?include=deleted")[1]
    assert deleted["deleted"] is True and deleted["version"] == 1.3
    names = [t["name"] for t in server.get("/api/v1/tables?databaseSchema=pg.db0.s9&include=all")[1]["data"]]
    assert names == ["v"]
    assert server.get("/api/v1/tables?databaseSchema=pg.db0.s9")[1]["data"] == []
    assert server.put("/api/v1/tables/restore", {"id": t0["id"]})[0] == 200
    assert server.call("DELETE", f"/api/v1/tables/{t0['id']}?hardDelete=true")[0] == 200
    assert server.get("/api/v1/tables/name/pg.db0.s9.v?include=all")[0] == 404


def test_search_field_query(server):
    status, body = server.get("/api/v1/search/query?" + urllib.parse.urlencode(
        {"q": 'fullyQualifiedName:"bq.db1.s0.t00001"', "index": "table_search_index"}))
    assert status == 200 and body["hits"]["total"]["value"] == 1
    hit = body["hits"]["hits"][0]
    assert hit["_index"] == "table_search_index" and hit["_source"]["name"] == "t00001"
    body = server.get("/api/v1/search/query?" + urllib.parse.urlencode(
        {"q": "name:t0000* AND service.name:bq", "index": "table_search_index", "size": 100}))[1]
    assert body["hits"]["total"]["value"] == 9  # t00000 is "t.00000"


def test_pipeline_service_pipeline_status_and_validation(server):
    svc = {"name": "dagster", "serviceType": "Dagster"}
    assert server.put("/api/v1/services/pipelineServices", svc)[0] == 201
    status, again = server.put("/api/v1/services/pipelineServices", svc)
    assert status == 200 and again["version"] == 0.1
    status, bad = server.put("/api/v1/services/pipelineServices", {"name": "x", "serviceType": "Nope"})
    assert status == 400 and bad["errors"][0]["path"] == "serviceType"
    assert server.put("/api/v1/services/pipelineServices", {"name": "x"})[0] == 400      # required
    assert server.put("/api/v1/services/pipelineServices", {**svc, "bogus": 1})[0] == 400  # additionalProperties
    assert server.put("/api/v1/services/pipelineServices", b"{not json")[1]["message"] == "Unable to process JSON"
    assert server.call("PUT", "/api/v1/services/pipelineServices", b"{}", ctype="text/plain")[0] == 415

    pipe = {"name": "etl.daily", "service": "dagster", "tasks": [{"name": "a"}, {"name": "b", "downstreamTasks": []}]}
    assert server.put("/api/v1/pipelines", {**pipe, "service": "nope"}) == (
        404, {"code": 404, "message": "pipelineService instance for nope not found"})
    status, p = server.put("/api/v1/pipelines", pipe)
    assert status == 201 and p["fullyQualifiedName"] == 'dagster."etl.daily"'
    assert p["tasks"][0]["fullyQualifiedName"] == 'dagster."etl.daily".a'
    status, p2 = server.put("/api/v1/pipelines", {**pipe, "description": "d"})
    assert status == 200 and p2["version"] == 0.2
    fqn = q(p["fullyQualifiedName"])
    assert server.put(f"/api/v1/pipelines/{fqn}/status", {"timestamp": 1000, "executionStatus": "Successful",
                                                         "taskStatus": [{"name": "zz", "executionStatus": "Failed"}]}) \
        == (400, {"code": 400, "message": "Invalid task name zz"})
    assert server.put(f"/api/v1/pipelines/{fqn}/status", {"timestamp": "x", "executionStatus": "Successful"})[0] == 400
    for ts, st in ((1000, "Failed"), (2000, "Successful"), (1000, "Successful")):
        assert server.put(f"/api/v1/pipelines/{fqn}/status", {"timestamp": ts, "executionStatus": st,
                                                             "taskStatus": [{"name": "a", "executionStatus": st}]})[0] == 200
    status, body = server.get(f"/api/v1/pipelines/{fqn}/status?startTs=0&endTs=5000")
    assert status == 200 and [s["timestamp"] for s in body["data"]] == [2000, 1000]
    assert body["data"][1]["executionStatus"] == "Successful"   # same timestamp: replaced
    assert server.get(f"/api/v1/pipelines/{fqn}/status")[0] == 400
    got = server.get(f"/api/v1/pipelines/name/{fqn}?fields=tasks,pipelineStatus")[1]
    assert got["pipelineStatus"]["timestamp"] == 2000 and len(got["tasks"]) == 2


def test_lineage_put_get_patch_delete(server):
    src = server.get(f"/api/v1/tables/name/{q('pg.db0.s0.t00004')}")[1]
    dst = server.get(f"/api/v1/tables/name/{q('snow.db0.s0.t00004')}")[1]
    pipe_fqn = q('dagster."etl.daily"')
    pipe = server.get(f"/api/v1/pipelines/name/{pipe_fqn}")[1]
    edge = {"edge": {"fromEntity": {"id": src["id"], "type": "table"}, "toEntity": {"id": dst["id"], "type": "table"},
                     "lineageDetails": {"pipeline": {"id": pipe["id"], "type": "pipeline"}, "columnsLineage": [
                         {"fromColumns": [src["columns"][0]["fullyQualifiedName"]],
                          "toColumn": dst["columns"][0]["fullyQualifiedName"]}]}}}
    assert server.put("/api/v1/lineage", edge)[0] == 200
    bad = json.loads(json.dumps(edge))
    bad["edge"]["lineageDetails"]["columnsLineage"][0]["toColumn"] = "snow.db0.s0.t00004.nope"
    assert server.put("/api/v1/lineage", bad) == (400, {"code": 400, "message":
                                                       "Invalid fully qualified column name snow.db0.s0.t00004.nope"})
    missing = json.loads(json.dumps(edge))
    missing["edge"]["toEntity"]["id"] = "00000000-0000-0000-0000-000000000000"
    assert server.put("/api/v1/lineage", missing)[0] == 404
    assert server.put("/api/v1/lineage", {"edge": {"fromEntity": {"id": src["id"]}}})[0] == 400

    status, g = server.get(f"/api/v1/lineage/table/name/{q(dst['fullyQualifiedName'])}?upstreamDepth=2&downstreamDepth=1")
    assert status == 200 and g["entity"]["id"] == dst["id"]
    assert [n["id"] for n in g["nodes"]] == [src["id"]]
    up = g["upstreamEdges"][0]
    assert (up["fromEntity"], up["toEntity"]) == (src["id"], dst["id"])
    assert up["lineageDetails"]["pipeline"]["fullyQualifiedName"] == pipe["fullyQualifiedName"]

    path = f"/api/v1/lineage/table/{src['id']}/table/{dst['id']}"
    patch = [{"op": "add", "path": "/description", "value": "via dagster"}]
    status, e = server.call("PATCH", path, json.dumps(patch).encode(), ctype="application/json-patch+json")
    assert status == 200 and e["lineageDetails"]["description"] == "via dagster"
    bad_patch = [{"op": "replace", "path": "/columnsLineage", "value": "nope"}]
    assert server.call("PATCH", path, json.dumps(bad_patch).encode(), ctype="application/json-patch+json")[0] == 400
    assert server.call("DELETE", path)[0] == 200
    assert server.call("DELETE", path)[0] == 404
    assert server.get(f"/api/v1/lineage/table/name/{q(dst['fullyQualifiedName'])}")[1]["upstreamEdges"] == []


def test_classifications_and_tags(server):
    assert server.put("/api/v1/tags", {"classification": "Dagster", "name": "kind", "description": "d"}) == (
        404, {"code": 404, "message": "classification instance for Dagster not found"})
    assert server.put("/api/v1/classifications", {"name": "Dagster"})[0] == 400     # description required
    assert server.put("/api/v1/classifications", {"name": "Dagster", "description": "d"})[0] == 201
    status, tag = server.put("/api/v1/tags", {"classification": "Dagster", "name": "kind.x", "description": "d"})
    assert status == 201 and tag["fullyQualifiedName"] == 'Dagster."kind.x"'
    assert server.get(f"/api/v1/tags/name/{q(tag['fullyQualifiedName'])}")[1]["id"] == tag["id"]
    assert server.put("/api/v1/tags", {"classification": "Dagster", "name": "a::b", "description": "d"})[0] == 400
    pipe = {"name": "tagged", "service": "dagster", "tags": [
        {"tagFQN": "Dagster.missing", "source": "Classification", "labelType": "Manual", "state": "Confirmed"}]}
    assert server.put("/api/v1/pipelines", pipe)[1]["message"] == "tag instance for Dagster.missing not found"


def test_change_events_and_state_survives_a_restart(server, tmp_path):
    t = server.get(f"/api/v1/tables/name/{q('bq.db0.s1.t00002')}")[1]
    server.admin("tables/delete", {"fqns": ["bq.db0.s1.t00002"], "hardDelete": False})
    body = server.get(f"/api/v1/events?entityDeleted=table&timestamp={t['updatedAt']}")[1]
    assert any(e["eventType"] == "entitySoftDeleted" and e["entityId"] == t["id"] for e in body["data"])
    info = server.get("/contract/info", token=None)[1]
    server.stop()
    server.start()
    assert server.get("/contract/info", token=None)[1]["tables"] == info["tables"]
    again = server.get(f"/api/v1/tables/name/{q('bq.db0.s1.t00002')}?include=deleted")[1]
    assert again["id"] == t["id"] and again["deleted"] is True
    # a torn last line (a kill in the middle of a write) is dropped
    with open(server.journal, "ab") as fh:
        fh.write(b'{"op": "tables_upsert", "ts": 1, "ar')
    server.stop()
    server.start()
    assert server.get("/contract/info", token=None)[1]["tables"] == info["tables"]


# ChangeEvent (openmetadata-spec type/changeEvent.json): properties, required ones, eventType enum
# (2.0.7 adds entityRestored to the enum of the older schema).
CHANGE_EVENT_PROPERTIES = {"eventType", "entityType", "entityId", "entityFullyQualifiedName", "previousVersion",
                           "currentVersion", "userName", "timestamp", "changeDescription", "entity"}
CHANGE_EVENT_REQUIRED = {"eventType", "entityType", "entityId", "timestamp"}
EVENT_TYPES = {"entityCreated", "entityUpdated", "entityRestored", "entitySoftDeleted", "entityDeleted"}


def events(server, since, **params):
    query = urllib.parse.urlencode({**params, "timestamp": since})
    status, body = server.get(f"/api/v1/events?{query}")
    assert status == 200, body
    assert body["paging"]["total"] == len(body["data"])
    for e in body["data"]:
        assert set(e) <= CHANGE_EVENT_PROPERTIES and CHANGE_EVENT_REQUIRED <= set(e), e
        assert e["eventType"] in EVENT_TYPES and isinstance(e["timestamp"], int)
    stamps = [e["timestamp"] for e in body["data"]]
    assert stamps == sorted(stamps), "oldest first"
    return body["data"]


def test_every_table_write_is_a_change_event_since_a_timestamp(server):
    all_tables = {"entityCreated": "table", "entityUpdated": "table", "entityRestored": "table",
                  "entityDeleted": "table"}
    since = server.get("/api/v1/system/version")[1]["timestamp"]
    spec = {"service": "ev", "database": "db", "schema": "s", "name": "t1",
            "columns": [{"name": "id", "dataType": "BIGINT"}]}
    server.admin("tables", {"tables": [spec]})                                     # created
    server.admin("tables", {"tables": [spec]})                                     # unchanged: no event
    server.admin("tables", {"tables": [{**spec, "description": "d"}]})             # updated
    t = server.get("/api/v1/tables/name/ev.db.s.t1")[1]
    assert server.call("DELETE", "/api/v1/tables/name/ev.db.s.t1")[0] == 200       # soft-deleted
    assert server.put("/api/v1/tables/restore", {"id": t["id"]})[0] == 200        # restored
    assert server.call("DELETE", f"/api/v1/tables/{t['id']}?hardDelete=true")[0] == 200  # hard-deleted
    got = [e for e in events(server, since, **all_tables) if e["entityFullyQualifiedName"] == "ev.db.s.t1"]
    assert [e["eventType"] for e in got] == ["entityCreated", "entityUpdated", "entitySoftDeleted",
                                             "entityRestored", "entityDeleted"]
    assert all(e["entityId"] == t["id"] and e["entityType"] == "table" for e in got)
    assert [e.get("previousVersion") for e in got] == [None, 0.1, 0.2, 0.3, 0.4]
    assert [e["currentVersion"] for e in got] == [0.1, 0.2, 0.3, 0.4, 0.4]
    assert got[1]["timestamp"] == t["updatedAt"], "an event's timestamp is the entity's updatedAt"
    # `timestamp` is inclusive (eventTime >= timestamp) and filters
    last = got[-1]["timestamp"]
    assert got[-1] in events(server, last, **all_tables)
    assert events(server, last + 1, **all_tables) == []
    # each parameter selects its event types; entityDeleted covers soft and hard deletes
    only_deleted = [e["eventType"] for e in events(server, since, entityDeleted="table")
                    if e["entityFullyQualifiedName"] == "ev.db.s.t1"]
    assert only_deleted == ["entitySoftDeleted", "entityDeleted"]
    assert [e for e in events(server, since, entityCreated="pipeline")] == []
    assert len(events(server, since, entityCreated="*")) >= 1
    assert events(server, since) == []                                             # nothing asked for
    # test-only: purging the events of a table (OpenMetadata purges old events)
    assert server.admin("events/purge", {"fqns": ["ev.db.s.t1"]})["purged"] == 5
    assert [e for e in events(server, since, **all_tables) if e["entityFullyQualifiedName"] == "ev.db.s.t1"] == []
