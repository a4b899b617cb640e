"""Black-box tests of the task manager example over HTTP, served by real gunicorn."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import redis
import requests

HERE = Path(__file__).resolve().parent


@pytest.fixture
def config(tmp_path):
    """A copy of the example (config and script) in tmp_path, so server logs stay out of the source tree."""
    for name in ("backworks.yaml", "tasks.py"):
        shutil.copy(HERE / name, tmp_path / name)
    return tmp_path / "backworks.yaml"
TASKS = [("Write spec", "todo", "high", "ann", "2024-05-03"),
         ("Review PR", "doing", "urgent", "bob", "2024-05-01"),
         ("Ship it", "done", "normal", "ann", None),
         ("Fix bug", "todo", "urgent", None, "2024-05-02"),
         ("Plan sprint", "todo", "low", "cy", "2024-06-01")]


@pytest.fixture
def api(gunicorn, config):
    """The task manager on one sync worker with in-memory state, filled with TASKS."""
    base = gunicorn(config, workers=1, worker_class="sync").url + "/api"
    for title, status, priority, assignee, due in TASKS:
        response = requests.post(base + "/tasks", json={"title": title, "status": status, "priority": priority,
                                                        "assignee": assignee, "due": due}, timeout=5)
        assert response.status_code == 201, response.text
    return base


def titles(response):
    assert response.status_code == 200, response.text
    return [t["title"] for t in response.json()["items"]]


def test_create_defaults_get_update_and_delete(api):
    created = requests.post(api + "/tasks", json={"title": "  Tidy up "}, timeout=5)
    task = created.json()
    assert created.status_code == 201 and created.headers["Location"] == f"/api/tasks/{task['id']}"
    assert (task["title"], task["status"], task["priority"], task["assignee"]) == ("Tidy up", "todo", "normal", None)
    url = api + f"/tasks/{task['id']}"
    assert requests.get(url, timeout=5).json() == task
    done = requests.patch(url, json={"status": "done", "assignee": "ann"}, timeout=5).json()
    assert done["status"] == "done" and done["assignee"] == "ann" and done["updated_at"]
    assert requests.delete(url, timeout=5).status_code == 204
    assert requests.get(url, timeout=5).json() == {"error": {"code": "not_found",
                                                             "message": f"no task with id '{task['id']}'"}}


def test_filters_on_status_priority_and_assignee(api):
    assert titles(requests.get(api + "/tasks", params={"status": "todo"}, timeout=5)) == [
        "Write spec", "Fix bug", "Plan sprint"]
    assert titles(requests.get(api + "/tasks", params={"status": "todo,doing", "priority": "urgent"}, timeout=5)) == [
        "Review PR", "Fix bug"]
    assert titles(requests.get(api + "/tasks", params={"assignee": "ann"}, timeout=5)) == ["Write spec", "Ship it"]
    assert titles(requests.get(api + "/tasks", params={"due_before": "2024-05-03"}, timeout=5)) == [
        "Review PR", "Fix bug"]
    assert titles(requests.get(api + "/tasks", params={"q": "SPRINT"}, timeout=5)) == ["Plan sprint"]


def test_sort_and_pages(api):
    by_priority = requests.get(api + "/tasks", params={"sort": "-priority"}, timeout=5)
    assert titles(by_priority) == ["Review PR", "Fix bug", "Write spec", "Ship it", "Plan sprint"]
    assert titles(requests.get(api + "/tasks", params={"sort": "due"}, timeout=5)) == [
        "Review PR", "Fix bug", "Write spec", "Plan sprint", "Ship it"]
    page = requests.get(api + "/tasks", params={"per_page": 2, "page": 3}, timeout=5).json()
    assert [t["title"] for t in page["items"]] == ["Plan sprint"]
    assert (page["total"], page["page"], page["per_page"]) == (5, 3, 2)


def test_values_outside_the_allowed_ones_are_400(api):
    response = requests.post(api + "/tasks", json={"title": "", "status": "blocked", "priority": "asap",
                                                   "due": "tomorrow", "owner": "x"}, timeout=5)
    assert response.status_code == 400
    assert response.json()["error"]["details"] == [
        {"field": "owner", "message": "unknown field (allowed: title, status, priority, assignee, due)"},
        {"field": "title", "message": "is required (a non-empty string)"},
        {"field": "status", "message": "must be one of: todo, doing, done (got 'blocked')"},
        {"field": "priority", "message": "must be one of: low, normal, high, urgent (got 'asap')"},
        {"field": "due", "message": "must be a date like 2024-05-01, or null"},
    ]
    query = requests.get(api + "/tasks", params={"status": "todo,later", "sort": "size", "per_page": 500},
                         timeout=5)
    assert query.status_code == 400
    assert query.json()["error"]["details"] == [
        {"field": "status", "message": "must be one of: todo, doing, done (got 'later')"},
        {"field": "sort", "message": "must be one of: id, -id, priority, -priority, due, -due, status, -status "
                                     "(got 'size')"},
        {"field": "per_page", "message": "must be at most 100"},
    ]
    patch = requests.patch(api + "/tasks/1", json={"priority": "HIGH"}, timeout=5)
    assert patch.status_code == 400
    assert requests.get(api + "/tasks/1", timeout=5).json()["priority"] == "high"
    assert requests.post(api + "/tasks", data="title=x", timeout=5).json()["error"]["code"] == "invalid_body"


def test_stats_count_tasks_by_status(api):
    assert requests.get(api + "/stats", timeout=5).json() == {"by_status": {"todo": 3, "doing": 1, "done": 1},
                                                               "total": 5}


def test_two_workers_share_tasks_through_redis(gunicorn, redis_url, config):
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter("backworks:runtime:tasks:*"):
        client.delete(key)
    server = gunicorn(config, workers=2, worker_class="sync", env={"TASKS_STATE_URL": redis_url})
    api = server.url + "/api"
    for i in range(6):
        assert requests.post(api + "/tasks", json={"title": f"t{i}"}, timeout=5).status_code == 201
    for _ in range(6):
        assert requests.get(api + "/stats", timeout=5).json()["total"] == 6
    for key in client.scan_iter("backworks:runtime:tasks:*"):
        client.delete(key)
