"""Runtime scripts read and write the records of database endpoints through `db` (runtime.tables)."""
from __future__ import annotations

import textwrap
import time

import pytest
import requests

from backworks.app import create_app
from backworks.errors import ConfigError
from tests.helpers.basics import write_config

CONFIG = """
server: {{watch: false}}
database: {{url: "sqlite:///{db}"}}
endpoints:
  items:
    path: /items
    mode: database
    database:
      table: items
      fields:
        name: {{type: string, required: true, unique: true, max_length: 20}}
        qty: {{type: integer, min: 0, default: 0}}
        status: {{type: string, allowed: [open, done], default: open}}
  run:
    path: /run/{{action}}
    mode: runtime
    runtime:
      script: handler.py
      tables: {tables}
{extra}"""

SCRIPT = """
def handle(request):
    action = request["path_params"]["action"]
    data = request["json"] or {}
    try:
        if action == "create":
            return {"status": 201, "json": db.create("items", data)}
        if action == "get":
            return {"found": db.get("items", data["id"])}
        if action == "list":
            return db.list("items", data)
        if action == "update":
            return {"changed": db.update("items", data["id"], data["changes"], data.get("where"))}
        if action == "delete":
            return {"deleted": db.delete("items", data["id"])}
        if action == "other":
            return db.get("secrets", 1)
    except ValueError as exc:
        return {"status": 400, "json": {"error": str(exc)}}
"""


def make_app(tmp_path, tables="[items]", extra="", script=SCRIPT):
    (tmp_path / "handler.py").write_text(textwrap.dedent(script))
    text = CONFIG.format(db=tmp_path / "app.db", tables=tables, extra=extra)
    return create_app(write_config(tmp_path, text))


@pytest.fixture
def client(tmp_path):
    app = make_app(tmp_path)
    yield app.test_client()
    app.extensions["backworks"].runtime.close()


def test_db_create_get_list_update_and_delete_records(client):
    created = client.post("/run/create", json={"name": "kettle", "qty": 2})
    assert created.status_code == 201
    record = created.json
    assert record == {"id": 1, "name": "kettle", "qty": 2, "status": "open"}
    assert client.get("/items/1").json == record  # the database endpoint sees what the script wrote
    assert client.post("/run/get", json={"id": 1}).json == {"found": record}
    assert client.post("/run/get", json={"id": "1"}).json == {"found": record}
    assert client.post("/run/get", json={"id": 99}).json == {"found": None}
    assert client.post("/run/get", json={"id": "x"}).json == {"found": None}
    client.post("/run/create", json={"name": "teapot", "qty": 5})
    listed = client.post("/run/list", json={"qty__gte": 3, "sort": "-id"}).json
    assert listed == {"items": [{"id": 2, "name": "teapot", "qty": 5, "status": "open"}], "total": 1,
                      "limit": 20, "offset": 0}
    changed = client.post("/run/update", json={"id": 1, "changes": {"status": "done"}}).json
    assert changed == {"changed": {"id": 1, "name": "kettle", "qty": 2, "status": "done"}}
    assert client.post("/run/delete", json={"id": 1}).json == {"deleted": True}
    assert client.post("/run/delete", json={"id": 1}).json == {"deleted": False}
    assert client.get("/items/1").status_code == 404


def test_db_update_with_where_changes_nothing_when_the_record_does_not_match(client):
    client.post("/run/create", json={"name": "kettle"})
    once = client.post("/run/update",
                       json={"id": 1, "changes": {"status": "done"}, "where": {"status": "open"}})
    assert once.json["changed"]["status"] == "done"
    twice = client.post("/run/update", json={"id": 1, "changes": {"qty": 9}, "where": {"status": "open"}})
    assert twice.json == {"changed": None}
    assert client.get("/items/1").json["qty"] == 0


def test_db_write_problems_raise_value_error_with_the_http_message(client):
    invalid = client.post("/run/create", json={"qty": -1, "color": "red"})
    assert invalid.status_code == 400
    assert invalid.json == {"error": "invalid items record: qty: must be at least 0; color: unknown field "
                                     "(allowed: name, qty, status); name: is required"}
    client.post("/run/create", json={"name": "kettle"})
    clash = client.post("/run/create", json={"name": "kettle"})
    assert clash.json == {"error": "name 'kettle' is already taken (it must be unique)"}
    query = client.post("/run/list", json={"colour": "red"})
    assert query.json == {"error": "unknown filter field 'colour' (allowed: id, name, qty, status)"}
    where = client.post("/run/update", json={"id": 1, "changes": {}, "where": {"owner": "x"}})
    assert where.json == {"error": "db: where: unknown field 'owner'"}


def test_db_refuses_tables_the_endpoint_did_not_list(client):
    response = client.post("/run/other")
    assert response.status_code == 400
    assert response.json == {"error": "db: 'secrets' is not one of this endpoint's tables (items; see "
                                      "runtime.tables)"}


def test_runtime_tables_must_name_database_endpoints(tmp_path):
    with pytest.raises(ConfigError) as caught:
        make_app(tmp_path, tables="[items, run, nope]")
    assert [p.split(": ", 1)[1] for p in caught.value.problems] == [
        "endpoints.run.runtime.tables.1: 'run' is not a database endpoint (database endpoints: items)",
        "endpoints.run.runtime.tables.2: 'nope' is not a database endpoint (database endpoints: items)",
    ]


def test_runtime_tables_with_process_isolation_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        make_app(tmp_path, extra="      isolation: process\n")
    assert caught.value.problems[0].split(": ", 1)[1] == (
        "endpoints.run.runtime.tables: runtime.tables needs inline isolation (sync gunicorn workers or "
        "`backworks serve`); a sandbox process has no database access (isolation: process)")


def test_scripts_without_tables_have_no_db(tmp_path, caplog):
    app = make_app(tmp_path, tables="[]", script="def handle(request):\n    return db.get('items', 1)\n")
    response = app.test_client().post("/run/x")
    app.extensions["backworks"].runtime.close()
    assert response.status_code == 500 and response.json["error"]["code"] == "handler_failed"
    assert "NameError: name 'db' is not defined" in caplog.text


def test_db_still_works_after_a_hot_reload_under_gunicorn(tmp_path, gunicorn):
    """A reload runs in the file watcher's thread: the worker keeps inline isolation, and with it `db`."""
    (tmp_path / "handler.py").write_text(textwrap.dedent(SCRIPT))
    text = CONFIG.format(db=tmp_path / "app.db", tables="[items]", extra="")
    text = text.replace("server: {watch: false}\n", "")  # the file watcher on: this test edits the script
    server = gunicorn(write_config(tmp_path, text), workers=1, worker_class="sync")
    assert requests.post(server.url + "/run/create", json={"name": "before"}, timeout=5).status_code == 201
    edited = textwrap.dedent(SCRIPT).replace('return {"found": db.get("items", data["id"])}',
                                             'return {"found": db.get("items", data["id"]), "version": 2}')
    (tmp_path / "handler.py").write_text(edited)
    deadline = time.monotonic() + 10
    while True:
        answer = requests.post(server.url + "/run/get", json={"id": 1}, timeout=5).json()
        if "version" in answer or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert answer == {"found": {"id": 1, "name": "before", "qty": 0, "status": "open"}, "version": 2}
    assert "reload" in server.output() and "refused" not in server.output()


def test_a_script_looping_on_db_calls_still_times_out(tmp_path):
    """The timer is held off during a query, never switched off: a spent budget ends the call after it."""
    script = "def handle(request):\n    while True:\n        db.get('items', 1)\n"
    app = make_app(tmp_path, extra="      timeout_ms: 300\n", script=script)
    started = time.monotonic()
    response = app.test_client().post("/run/x")
    elapsed = time.monotonic() - started
    app.extensions["backworks"].runtime.close()
    assert response.status_code == 504 and response.json["error"]["code"] == "handler_timeout"
    assert elapsed < 5


ESCAPES = """
def kind(exc):
    for name, cls in (("AttributeError", AttributeError), ("TypeError", TypeError)):
        if isinstance(exc, cls):
            return name
    return "other: " + str(exc)


def handle(request):
    found = {}
    for name in ("registry", "names", "_names", "__self__"):
        try:
            getattr(db, name)
            found[name] = "reached"
        except Exception as exc:
            found[name] = kind(exc)
    try:
        getattr(db.get, "__self__")
        found["method self"] = "reached"
    except Exception as exc:
        found["method self"] = kind(exc)
    try:
        db.create("items", {"qty": "x"})
    except ValueError as exc:
        found["args"] = [isinstance(a, str) for a in exc.args]
    try:
        db.tables = None
        found["write"] = "done"
    except Exception as exc:
        found["write"] = kind(exc)
    return found
"""


def test_db_gives_scripts_nothing_of_the_host(tmp_path):
    app = make_app(tmp_path, script=ESCAPES)
    found = app.test_client().post("/run/x").json
    app.extensions["backworks"].runtime.close()
    assert found == {"registry": "AttributeError", "names": "AttributeError", "_names": "AttributeError",
                     "__self__": "AttributeError", "method self": "AttributeError", "args": [True],
                     "write": "TypeError"}
