"""Black-box tests of the users example over HTTP, served by real gunicorn (2 sync workers) on SQLite."""
from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

CONFIG = Path(__file__).resolve().parent / "backworks.yaml"


@pytest.fixture
def api(gunicorn, tmp_path):
    """The users API on a fresh SQLite file; returns its base URL."""
    config = tmp_path / "backworks.yaml"  # a copy, so server logs stay out of the source tree
    shutil.copy(CONFIG, config)
    server = gunicorn(config, workers=2, worker_class="sync",
                      env={"USERS_DATABASE_URL": f"sqlite:///{tmp_path / 'users.db'}"})
    return server.url + "/users"


def create(api, **user):
    response = requests.post(api, json=user, timeout=5)
    assert response.status_code == 201, response.text
    return response


def test_create_get_update_delete_a_user(api):
    created = create(api, email="ada@example.com", name="Ada Lovelace", age=36)
    user = created.json()
    assert created.headers["Location"] == f"/users/{user['id']}"
    assert user["role"] == "member" and user["active"] is True
    item = api + f"/{user['id']}"
    assert requests.get(item, timeout=5).json() == user
    patched = requests.patch(item, json={"role": "admin"}, timeout=5)
    assert patched.status_code == 200 and patched.json()["role"] == "admin"
    replaced = requests.put(item, json={"email": "ada@example.org", "name": "Ada"}, timeout=5)
    assert replaced.json()["email"] == "ada@example.org" and replaced.json()["age"] is None
    assert requests.delete(item, timeout=5).status_code == 204
    missing = requests.get(item, timeout=5)
    assert missing.status_code == 404
    assert missing.json()["error"] == {"code": "not_found", "message": f"no users record with id '{user['id']}'"}


def test_email_is_unique_across_workers(api):
    create(api, email="grace@example.com", name="Grace")
    statuses = [requests.post(api, json={"email": "grace@example.com", "name": "Copy"}, timeout=5)
                for _ in range(6)]
    assert {r.status_code for r in statuses} == {409}
    assert statuses[0].json()["error"]["message"] == "email 'grace@example.com' is already taken (it must be unique)"
    assert requests.get(api, timeout=5).json()["total"] == 1


def test_invalid_user_gets_400_listing_every_problem(api):
    response = requests.post(api, json={"email": 42, "role": "root", "age": -1, "nick": "x"}, timeout=5)
    assert response.status_code == 400
    assert response.json()["error"]["details"] == [
        {"field": "email", "message": "must be a string"},
        {"field": "role", "message": "must be one of: admin, member, guest"},
        {"field": "age", "message": "must be at least 0"},
        {"field": "nick", "message": "unknown field (allowed: active, age, created_at, email, name, role)"},
        {"field": "name", "message": "is required"},
    ]
    assert requests.post(api, data="email=a", timeout=5).status_code == 415


def test_list_filters_sorts_and_pages(api):
    for i in range(5):
        create(api, email=f"u{i}@example.com", name=f"User {i}", age=20 + i, role="guest" if i % 2 else "member")
    page = requests.get(api, params={"role": "member", "sort": "-age", "limit": 2}, timeout=5)
    body = page.json()
    assert [u["email"] for u in body["items"]] == ["u4@example.com", "u2@example.com"]
    assert body["total"] == 3 and body["limit"] == 2 and body["offset"] == 0
    assert page.headers["X-Total-Count"] == "3"
    assert page.links["next"]["url"] == "/users?role=member&sort=-age&limit=2&offset=2"
    older = requests.get(api, params={"age__gte": 23, "name__contains": "user"}, timeout=5).json()
    assert [u["email"] for u in older["items"]] == ["u3@example.com", "u4@example.com"]
    bad = requests.get(api, params={"agee": 3}, timeout=5)
    assert bad.status_code == 400
    assert bad.json()["error"]["message"] == "unknown filter field 'agee' (did you mean 'age'?)"


def test_concurrent_creates_with_one_email_make_exactly_one_user(api):
    def attempt(i):
        return requests.post(api, json={"email": "race@example.com", "name": f"Racer {i}"}, timeout=10).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(attempt, range(16)))
    assert statuses == [201] + [409] * 15
    assert requests.get(api, params={"email": "race@example.com"}, timeout=5).json()["total"] == 1
