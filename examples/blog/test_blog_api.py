"""Black-box tests of the blog example over HTTP, served by real gunicorn."""
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
    for name in ("backworks.yaml", "blog.py"):
        shutil.copy(HERE / name, tmp_path / name)
    return tmp_path / "backworks.yaml"


@pytest.fixture
def api(gunicorn, config):
    """The blog on one sync worker with in-memory state; returns the /api base URL."""
    return gunicorn(config, workers=1, worker_class="sync").url + "/api"


def post(api, **fields):
    data = {"title": "A post", "body": "Some text.", "author": "ann", **fields}
    response = requests.post(api + "/posts", json=data, timeout=5)
    assert response.status_code == 201, response.text
    return response.json()


def test_write_read_update_and_delete_a_post(api):
    created = requests.post(api + "/posts", json={"title": "First", "body": "Hello.", "author": "ann",
                                                 "tags": ["intro", "news", "intro"]}, timeout=5)
    assert created.status_code == 201
    body = created.json()
    assert created.headers["Location"] == f"/api/posts/{body['id']}"
    assert body["tags"] == ["intro", "news"] and body["published"] is False and body["comments"] == 0
    url = api + f"/posts/{body['id']}"
    assert requests.get(url, timeout=5).json() == body
    changed = requests.patch(url, json={"published": True, "title": "First!"}, timeout=5).json()
    assert changed["published"] is True and changed["title"] == "First!" and changed["updated_at"]
    assert requests.delete(url, timeout=5).status_code == 204
    gone = requests.get(url, timeout=5)
    assert gone.status_code == 404
    assert gone.json() == {"error": {"code": "not_found", "message": f"no post with id '{body['id']}'"}}


def test_invalid_posts_get_400_listing_every_problem(api):
    response = requests.post(api + "/posts", json={"title": " ", "body": 3, "tags": ["Bad Tag"], "draft": 1},
                             timeout=5)
    assert response.status_code == 400
    assert response.json()["error"]["details"] == [
        {"field": "draft", "message": "unknown field (allowed: author, body, published, tags, title)"},
        {"field": "title", "message": "must not be empty"},
        {"field": "body", "message": "must be a string"},
        {"field": "author", "message": "is required"},
        {"field": "tags", "message": "tag 'Bad Tag' must be lower-case letters, digits and '-' (at most 30)"},
    ]
    assert requests.patch(api + "/posts/999", json={}, timeout=5).status_code == 404


def test_listing_shows_published_posts_newest_first_filtered_by_tag(api):
    first = post(api, title="One", tags=["python"], published=True)
    post(api, title="Draft", tags=["python"])
    third = post(api, title="Three", tags=["sql"], published=True)
    listing = requests.get(api + "/posts", timeout=5).json()
    assert [p["id"] for p in listing["items"]] == [third["id"], first["id"]]
    assert listing["total"] == 2 and "body" not in listing["items"][0]
    tagged = requests.get(api + "/posts", params={"tag": "python"}, timeout=5).json()
    assert [p["title"] for p in tagged["items"]] == ["One"]
    drafts = requests.get(api + "/posts", params={"published": "false"}, timeout=5).json()
    assert [p["title"] for p in drafts["items"]] == ["Draft"]
    bad = requests.get(api + "/posts", params={"published": "maybe", "page": "0"}, timeout=5)
    assert bad.status_code == 400
    assert bad.json()["error"]["details"] == [{"field": "page", "message": "must be a positive integer"},
                                             {"field": "published", "message": "must be true or false"}]


def test_comments_are_validated_and_paged(api):
    published = post(api, published=True)
    url = api + f"/posts/{published['id']}/comments"
    for i in range(12):
        response = requests.post(url, json={"author": f"reader{i}", "text": f"comment {i}"}, timeout=5)
        assert response.status_code == 201
    page2 = requests.get(url, params={"page": 2}, timeout=5).json()
    assert page2["total"] == 12 and page2["page"] == 2 and page2["per_page"] == 10
    assert [c["text"] for c in page2["items"]] == ["comment 10", "comment 11"]
    assert requests.get(api + f"/posts/{published['id']}", timeout=5).json()["comments"] == 12
    invalid = requests.post(url, json={"text": "x" * 2001, "rating": 5}, timeout=5)
    assert invalid.status_code == 400
    assert invalid.json()["error"]["details"] == [
        {"field": "rating", "message": "unknown field (allowed: author, text)"},
        {"field": "author", "message": "is required"},
        {"field": "text", "message": "is longer than 2000 characters"},
    ]
    too_big = requests.get(url, params={"per_page": 51}, timeout=5)
    assert too_big.json()["error"]["details"] == [{"field": "per_page", "message": "must be at most 50"}]
    draft = post(api)
    closed = requests.post(api + f"/posts/{draft['id']}/comments", json={"author": "a", "text": "b"}, timeout=5)
    assert closed.status_code == 409
    assert closed.json()["error"]["message"] == "comments are open on published posts only"


def test_search_scores_title_body_and_tag_matches(api):
    a = post(api, title="Indexing in SQL", body="An index speeds up SQL queries.", tags=["sql"], published=True)
    b = post(api, title="Python tips", body="Use SQL from Python.", published=True)
    post(api, title="SQL draft", body="sql sql sql")
    post(api, title="Cooking", body="Nothing here.", published=True)
    result = requests.get(api + "/search", params={"q": "SQL"}, timeout=5).json()
    assert result == {"query": "sql", "total": 2, "items": [
        {"id": a["id"], "title": "Indexing in SQL", "score": 9},  # 3 (title) + 1 (body) + 5 (tag)
        {"id": b["id"], "title": "Python tips", "score": 1},  # body only
    ]}
    empty = requests.get(api + "/search", params={"q": "  !! "}, timeout=5)
    assert empty.status_code == 400
    assert empty.json()["error"]["message"] == "q: give at least one word to search for"


def test_two_workers_share_posts_through_redis(gunicorn, redis_url, config):
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter("backworks:runtime:blog:*"):
        client.delete(key)
    server = gunicorn(config, workers=2, worker_class="sync", env={"BLOG_STATE_URL": redis_url})
    api = server.url + "/api"
    ids = [post(api, title=f"Post {i}", published=True)["id"] for i in range(8)]
    assert len(set(ids)) == 8
    for _ in range(6):
        assert requests.get(api + "/posts", timeout=5).json()["total"] == 8
    for key in client.scan_iter("backworks:runtime:blog:*"):
        client.delete(key)
