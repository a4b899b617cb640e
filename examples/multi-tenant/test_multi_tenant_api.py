"""Black-box tests of the multi-tenant example over HTTP, served by real gunicorn (2 sync workers) on SQLite.

The point: whatever route a tenant uses (list and its filters, get, create, update, patch, delete), it never
reads or changes another tenant's rows.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import jwt
import pytest
import requests

from tests.helpers.basics import ctrl_c_stops, free_port
from tests.helpers.gunicorn import Gunicorn

HERE = Path(__file__).resolve().parent
SECRET = "test-secret-0123456789abcdef-0123456789"


def token(tenant, secret=SECRET, **claims):
    return jwt.encode({"tenant": tenant, "sub": "user-1", **claims}, secret, algorithm="HS256")


def as_tenant(tenant):
    return {"Authorization": f"Bearer {token(tenant)}"}


ACME = as_tenant("acme")
GLOBEX = {"X-Tenant-Id": "globex"}  # the gateway-header way in


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """The notes API (config in place, SQLite in a temporary folder), with notes of acme and globex."""
    data = tmp_path_factory.mktemp("tenants")
    server = Gunicorn(HERE / "backworks.yaml", workers=2, worker_class="sync",
                      env={"TENANTS_DATABASE_URL": f"sqlite:///{data}/tenants.db",
                           "TENANTS_JWT_SECRET": SECRET})
    url = server.url + "/notes"
    notes = {}
    for headers, title in ((ACME, "acme plan"), (ACME, "acme budget"), (GLOBEX, "globex secret")):
        created = requests.post(url, json={"title": title}, headers=headers, timeout=5)
        assert created.status_code == 201, created.text
        notes[title] = created.json()
    server.notes = notes
    server.api = url
    yield server
    server.stop()


def titles(response):
    assert response.status_code == 200, response.text
    return sorted(n["title"] for n in response.json()["items"])


def test_a_request_must_name_a_valid_tenant(api):
    missing = requests.get(api.api, timeout=5)
    assert missing.status_code == 401
    assert missing.json() == {"error": {"code": "tenant_required", "message": "say which tenant you are: "
                                        "send a Bearer token or an X-Tenant-Id header"}}
    invalid = {"code": "invalid_token",
               "message": "the token is malformed, expired or not signed with the service's key"}
    forged = jwt.encode({"tenant": "globex"}, "another-secret-0123456789-0123456789", algorithm="HS256")
    unsigned = jwt.encode({"tenant": "globex"}, None, algorithm="none")
    expired = token("acme", exp=int(time.time()) - 10)
    for bad in (forged, unsigned, expired, "not.a.jwt", "x"):
        refused = requests.get(api.api, headers={"Authorization": f"Bearer {bad}"}, timeout=5)
        assert (refused.status_code, refused.json()["error"]) == (401, invalid), bad
    mixed = requests.get(api.api, headers={**ACME, "X-Tenant-Id": "globex"}, timeout=5)
    assert mixed.status_code == 403
    assert mixed.json()["error"] == {"code": "tenant_mismatch",
                                     "message": "X-Tenant-Id does not match the token's tenant"}
    odd = requests.get(api.api, headers={"X-Tenant-Id": "Globex!"}, timeout=5)
    assert (odd.status_code, odd.json()["error"]["code"]) == (400, "invalid_tenant")
    no_claim = jwt.encode({"sub": "x"}, SECRET, algorithm="HS256")
    claimless = requests.get(api.api, headers={"Authorization": f"Bearer {no_claim}"}, timeout=5)
    assert claimless.json()["error"]["message"] == "the token has no valid 'tenant' claim"


def test_list_and_every_filter_show_only_the_callers_rows(api):
    assert titles(requests.get(api.api, headers=ACME, timeout=5)) == ["acme budget", "acme plan"]
    assert titles(requests.get(api.api, headers=GLOBEX, timeout=5)) == ["globex secret"]
    globex_id = api.notes["globex secret"]["id"]
    for query in ({"tenant": "globex"}, {"tenant": ["globex", "acme"]}, {"tenant__in": "globex,acme"},
                  {"tenant__gte": ""}, {"sort": "-tenant"}, {"limit": 100}):
        assert titles(requests.get(api.api, params=query, headers=ACME, timeout=5)) == ["acme budget",
                                                                                        "acme plan"], query
    for query in ({"tenant__ne": "acme"}, {"tenant__isnull": "true"}, {"id": globex_id},
                  {"id__contains": "globex"}, {"title__contains": "secret"}, {"tenant__contains": "glob"}):
        listed = requests.get(api.api, params=query, headers=ACME, timeout=5)
        assert (titles(listed), listed.json()["total"]) == ([], 0), query
    assert requests.get(api.api, params={"tenant": "globex"}, headers=ACME, timeout=5).headers[
        "X-Total-Count"] == "2"
    for query in ({"Tenant": "globex"}, {"tenant__eq": "globex"}):
        unknown = requests.get(api.api, params=query, headers=ACME, timeout=5)
        assert (unknown.status_code, unknown.json()["error"]["code"]) == (400, "invalid_query"), query


def test_another_tenants_note_is_not_found_by_id_for_any_method(api):
    note = api.notes["globex secret"]
    url = f"{api.api}/{note['id']}"
    expected = {"error": {"code": "not_found", "message": f"no notes record with id '{note['id']}'"}}
    for method, body in (("GET", None), ("PATCH", {"title": "mine"}), ("PUT", {"title": "mine"}),
                         ("DELETE", None)):
        response = requests.request(method, url, json=body, headers=ACME, timeout=5)
        assert (response.status_code, response.json()) == (404, expected), method
    assert requests.head(url, headers=ACME, timeout=5).status_code == 404
    encoded = requests.get(f"{api.api}/{note['id'].replace('.', '%2E')}", headers=ACME, timeout=5)
    assert encoded.status_code == 404
    assert requests.get(url, headers=GLOBEX, timeout=5).json() == note  # untouched
    own_missing = requests.get(f"{api.api}/acme.0000", headers=ACME, timeout=5)
    assert own_missing.json() == {"error": {"code": "not_found",
                                            "message": "no notes record with id 'acme.0000'"}}


def test_create_takes_the_callers_tenant_and_refuses_a_forged_one(api):
    created = requests.post(api.api, json={"title": "acme memo", "body": "hi"}, headers=ACME, timeout=5)
    assert created.status_code == 201
    note = created.json()
    assert note["tenant"] == "acme" and note["id"].startswith("acme.")
    assert created.headers["Location"] == f"/notes/{note['id']}"
    forged = requests.post(api.api, json={"title": "planted", "tenant": "globex"}, headers=ACME, timeout=5)
    assert forged.status_code == 403
    assert forged.json()["error"] == {"code": "tenant_mismatch",
                                      "message": "field tenant must be your tenant ('acme') or left out"}
    chosen_id = requests.post(api.api, json={"title": "planted", "id": "globex.planted"}, headers=ACME,
                              timeout=5)
    assert chosen_id.status_code == 400
    assert chosen_id.json()["error"]["message"] == "id is assigned by the server; leave it out"
    assert titles(requests.get(api.api, headers=GLOBEX, timeout=5)) == ["globex secret"]
    requests.delete(f"{api.api}/{note['id']}", headers=ACME, timeout=5)


def test_update_cannot_move_a_note_to_another_tenant(api):
    note = api.notes["acme plan"]
    url = f"{api.api}/{note['id']}"
    for method, body in (("PATCH", {"tenant": "globex"}), ("PUT", {"title": "moved", "tenant": "globex"})):
        moved = requests.request(method, url, json=body, headers=ACME, timeout=5)
        assert (moved.status_code, moved.json()["error"]["code"]) == (403, "tenant_mismatch"), method
    renamed = requests.put(url, json={"title": "acme plan"}, headers=ACME, timeout=5)
    assert renamed.status_code == 200 and renamed.json()["tenant"] == "acme"
    other_id = requests.patch(url, json={"id": api.notes["globex secret"]["id"]}, headers=ACME, timeout=5)
    assert other_id.status_code == 400
    assert requests.get(url, headers=ACME, timeout=5).json()["tenant"] == "acme"
    assert titles(requests.get(api.api, headers=GLOBEX, timeout=5)) == ["globex secret"]


def test_each_tenant_has_its_own_rate_limit(api):
    trial = as_tenant("trial")  # 5 requests a minute (limits.trial); counted per worker without Redis
    for sent in range(1, 12):  # noqa: B007 (`sent` is read after the loop)
        response = requests.get(api.api, headers=trial, timeout=5)
        if response.status_code == 429:
            break
        assert response.status_code == 200
    assert response.status_code == 429, f"no 429 after {sent} requests"
    assert response.json()["error"] == {"code": "rate_limited",
                                        "message": "tenant trial made more than 5 requests in 60 s"}
    assert 1 <= int(response.headers["Retry-After"]) <= 61
    assert requests.get(api.api, headers=ACME, timeout=5).status_code == 200  # other tenants are not affected


def test_run_script_serves_the_notes_api(tmp_path):
    port = free_port()
    env = {**os.environ, "PORT": str(port), "TENANTS_DATA": str(tmp_path)}
    with open(tmp_path / "run.log", "wb") as log:
        proc = subprocess.Popen(["bash", str(HERE / "run.sh")], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True,
                                preexec_fn=ctrl_c_stops)
    try:
        deadline, response = time.monotonic() + 30, None
        while response is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/notes", headers={"X-Tenant-Id": "acme"},
                                        timeout=2)
            except requests.ConnectionError:
                time.sleep(0.2)
        assert response is not None, (tmp_path / "run.log").read_text(errors="replace")
        assert response.json() == {"items": [], "total": 0, "limit": 20, "offset": 0}
        assert (tmp_path / "tenants.db").exists()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(15)
