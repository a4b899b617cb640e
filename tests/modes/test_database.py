"""Database mode against real SQLite and real PostgreSQL: CRUD, validation, filters, paging, shapes."""
from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from backworks.app import create_app
from backworks.database.engine import APPLICATION_NAME, normalise_url
from backworks.errors import ConfigError
from tests.helpers.basics import write_config

FIELDS = """\
        email: {type: string, required: true, unique: true, max_length: 40}
        name: {type: string, max_length: 20}
        age: {type: integer, min: 0, max: 150}
        score: {type: number}
        active: {type: boolean, default: true}
        role: {type: string, allowed: [admin, member], default: member}
        born: {type: date}
        created_at: {type: datetime, default: now}
        profile: {type: json}
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """A database URL (SQLite file or the real PostgreSQL) and a fresh table name, dropped afterwards."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    table = f"t_{uuid.uuid4().hex[:10]}"
    yield url, table
    engine = sa.create_engine(normalise_url(url))
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()


def make_app(tmp_path, db, fields=FIELDS, extra=""):
    url, table = db
    text = (f'database: {{url: "{url}"}}\n'
            f"endpoints:\n  people:\n    path: /people\n    mode: database\n    database:\n"
            f"      table: {table}\n      max_limit: 5\n      default_limit: 3\n{extra}"
            f"      fields:\n{fields}")
    app = create_app(write_config(tmp_path, text))
    return app


@pytest.fixture
def client(tmp_path, db):
    app = make_app(tmp_path, db)
    yield app.test_client()
    app.extensions["backworks"].runtime.close()


def add(client, **values):
    response = client.post("/people", json=values)
    assert response.status_code == 201, response.json
    return response.json


def add_people(client, count):
    return [add(client, email=f"p{i}@x.io", name=f"Person {i}", age=20 + i, score=i / 2,
                active=i % 2 == 0) for i in range(count)]


def test_create_answers_201_with_location_and_the_stored_record(client):
    response = client.post("/people", json={"email": "ada@x.io", "name": "Ada", "age": 36, "born": "1815-12-10",
                                            "profile": {"langs": ["en"]}})
    assert response.status_code == 201
    assert response.headers["Location"] == f"/people/{response.json['id']}"
    record = response.json
    assert record["email"] == "ada@x.io" and record["age"] == 36 and record["born"] == "1815-12-10"
    assert record["active"] is True and record["role"] == "member"
    assert record["profile"] == {"langs": ["en"]}
    assert record["created_at"].endswith("Z")
    assert client.get(response.headers["Location"]).json == record


def test_get_put_patch_delete_an_item(client):
    created = add(client, email="a@x.io", name="A", age=5, score=1.5)
    item = f"/people/{created['id']}"
    patched = client.patch(item, json={"age": 6})
    assert patched.status_code == 200
    assert patched.json["age"] == 6 and patched.json["name"] == "A" and patched.json["score"] == 1.5
    replaced = client.put(item, json={"email": "b@x.io", "id": created["id"]})
    assert replaced.status_code == 200
    assert replaced.json["email"] == "b@x.io"
    assert replaced.json["name"] is None and replaced.json["age"] is None
    assert replaced.json["created_at"] == created["created_at"]
    assert client.delete(item).status_code == 204
    assert client.get(item).status_code == 404
    assert client.delete(item).status_code == 404


def test_missing_or_malformed_id_is_404(client, db):
    for key in ("999", "abc", "1.5"):
        response = client.get(f"/people/{key}")
        assert response.status_code == 404
        assert response.json["error"] == {"code": "not_found", "message": f"no {db[1]} record with id '{key}'"}
    assert client.patch("/people/999", json={"age": 1}).status_code == 404
    assert client.put("/people/999", json={"email": "z@x.io"}).status_code == 404


def test_validation_lists_every_problem_at_once(client):
    response = client.post("/people", json={"name": "x" * 21, "age": "old", "nickname": "n", "role": "boss",
                                            "active": "yes", "born": "yesterday", "score": True})
    assert response.status_code == 400
    error = response.json["error"]
    assert error["code"] == "validation_failed"
    assert error["details"] == [
        {"field": "name", "message": "is longer than 20 characters"},
        {"field": "age", "message": "must be an integer"},
        {"field": "nickname", "message": "unknown field (did you mean 'name'?)"},
        {"field": "role", "message": "must be one of: admin, member"},
        {"field": "active", "message": "must be true or false"},
        {"field": "born", "message": "must be an ISO 8601 date (e.g. 2024-05-01), got 'yesterday'"},
        {"field": "score", "message": "must be a number"},
        {"field": "email", "message": "is required"},
    ]
    assert error["message"].startswith("invalid ")
    assert "name: is longer than 20 characters; age: must be an integer;" in error["message"]


def test_validation_checks_bounds_nulls_and_server_assigned_id(client):
    response = client.post("/people", json={"id": 7, "email": None, "age": 151})
    assert response.status_code == 400
    assert response.json["error"]["details"] == [
        {"field": "id", "message": "is assigned by the server; leave it out"},
        {"field": "email", "message": "must not be null"},
        {"field": "age", "message": "must be at most 150"},
    ]
    created = add(client, email="a@x.io")
    response = client.patch(f"/people/{created['id']}", json={"id": created["id"] + 1, "age": -1})
    assert response.json["error"]["details"] == [
        {"field": "id", "message": "cannot be changed (it must match the id in the path)"},
        {"field": "age", "message": "must be at least 0"},
    ]


def test_unique_violation_is_409_naming_the_field(client):
    add(client, email="taken@x.io")
    other = add(client, email="free@x.io")
    response = client.post("/people", json={"email": "taken@x.io"})
    assert response.status_code == 409
    assert response.json["error"] == {"code": "conflict",
                                      "message": "email 'taken@x.io' is already taken (it must be unique)",
                                      "details": {"field": "email"}}
    response = client.patch(f"/people/{other['id']}", json={"email": "taken@x.io"})
    assert response.status_code == 409
    assert response.json["error"]["details"] == {"field": "email"}
    assert client.patch(f"/people/{other['id']}", json={"email": "free@x.io"}).status_code == 200
    assert client.get("/people").json["total"] == 2


def test_write_bodies_must_be_json_objects(client):
    response = client.post("/people", data="email=a", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.json["error"] == {"code": "unsupported_media_type",
                                      "message": "send the record as JSON (Content-Type: application/json)"}
    response = client.post("/people", data="[1, 2]", content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_body"
    response = client.post("/people", data="{broken", content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_json"


def ids(response):
    assert response.status_code == 200, response.json
    return [item["email"] for item in response.json["items"]]


def test_filters_compare_values_of_the_declared_type(client):
    add_people(client, 5)
    add(client, email="odd@x.io", name="100% Odd_one")
    assert ids(client.get("/people?age=22")) == ["p2@x.io"]
    assert ids(client.get("/people?age__gte=23")) == ["p3@x.io", "p4@x.io"]
    assert ids(client.get("/people?age__lte=21&age__gt=20")) == ["p1@x.io"]
    assert ids(client.get("/people?age__lt=21")) == ["p0@x.io"]
    assert ids(client.get("/people?age__ne=20&age__isnull=false&limit=5")) == ["p1@x.io", "p2@x.io", "p3@x.io",
                                                                              "p4@x.io"]
    assert ids(client.get("/people?age__isnull=true")) == ["odd@x.io"]
    assert ids(client.get("/people?email__in=p1@x.io,p3@x.io,nobody")) == ["p1@x.io", "p3@x.io"]
    assert ids(client.get("/people?name__contains=PERSON%204")) == ["p4@x.io"]
    assert ids(client.get("/people?name__contains=0%25%20odd_")) == ["odd@x.io"]
    assert ids(client.get("/people?name__contains=_")) == ["odd@x.io"]
    assert ids(client.get("/people?active=false")) == ["p1@x.io", "p3@x.io"]
    assert ids(client.get("/people?score__gt=1.2")) == ["p3@x.io", "p4@x.io"]
    assert ids(client.get("/people?created_at__gte=2000-01-01T00:00:00Z&role=member&limit=1")) == ["p0@x.io"]


def test_bad_filters_and_sorts_are_400_listing_every_problem(client):
    response = client.get("/people?nmae=x&age__gte=old&age__like=3&profile=1&sort=-agee,profile&limit=0")
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_query"
    assert response.json["error"]["details"] == [
        "unknown filter field 'nmae' (did you mean 'name'?)",
        "filter 'age__gte': 'old' is not an integer",
        "unknown filter operator '__like' in 'age__like' (use one of: __contains, __gt, __gte, __in, __isnull, "
        "__lt, __lte, __ne)",
        "field 'profile' is JSON and cannot be filtered",
        "unknown sort field 'agee' (did you mean 'age'?)",
        "field 'profile' is JSON and cannot be sorted",
        "limit must be at least 1",
    ]
    response = client.get("/people?age__contains=3&page=1&offset=2")
    assert response.json["error"]["details"] == [
        "filter 'age__contains': '__contains' applies to string fields only (age is integer)",
        "use either limit/offset or page/per_page, not both",
    ]


def test_sort_by_several_fields_and_directions(client):
    for email, age in (("a@x.io", 30), ("b@x.io", 20), ("c@x.io", 30), ("d@x.io", 20)):
        add(client, email=email, age=age)
    assert ids(client.get("/people?sort=-age,email&limit=4")) == ["a@x.io", "c@x.io", "b@x.io", "d@x.io"]
    assert ids(client.get("/people?sort=age,-email&limit=4")) == ["d@x.io", "b@x.io", "c@x.io", "a@x.io"]


def test_pagination_gives_total_and_link_headers(client):
    add_people(client, 7)
    response = client.get("/people?active=true&limit=2&offset=2")
    assert response.json["total"] == 4 and response.json["limit"] == 2 and response.json["offset"] == 2
    assert ids(response) == ["p4@x.io", "p6@x.io"]
    assert response.headers["X-Total-Count"] == "4"
    assert response.headers["Link"] == (
        '</people?active=true&limit=2&offset=0>; rel="first", '
        '</people?active=true&limit=2&offset=0>; rel="prev", '
        '</people?active=true&limit=2&offset=2>; rel="last"')
    first = client.get("/people")
    assert first.json["limit"] == 3 and first.json["total"] == 7
    assert first.headers["Link"] == ('</people?limit=3&offset=0>; rel="first", '
                                     '</people?limit=3&offset=3>; rel="next", '
                                     '</people?limit=3&offset=6>; rel="last"')


def test_page_and_per_page_and_the_hard_maximum_limit(client):
    add_people(client, 7)
    response = client.get("/people?page=2&per_page=3")
    assert ids(response) == ["p3@x.io", "p4@x.io", "p5@x.io"]
    assert response.json["offset"] == 3
    assert 'rel="next"' in response.headers["Link"]
    assert '</people?page=3&per_page=3>; rel="last"' in response.headers["Link"]
    capped = client.get("/people?limit=1000")
    assert capped.json["limit"] == 5 and len(capped.json["items"]) == 5 and capped.json["total"] == 7
    beyond = client.get("/people?offset=100")
    assert beyond.json["items"] == [] and beyond.json["total"] == 7


INJECTIONS = [
    "1; DROP TABLE {table}; --",
    "' OR '1'='1",
    "1 OR 1=1",
    "\" OR \"\"=\"",
    "x'); DELETE FROM {table}; --",
    "%' --",
    "1 UNION SELECT * FROM {table}",
]


def test_injection_strings_through_every_input_leave_the_table_intact(client, db):
    table = db[1]
    people = add_people(client, 3)
    for raw in INJECTIONS:
        text = raw.format(table=table)
        assert client.get(f"/people/{text}").status_code == 404
        assert client.delete(f"/people/{text}").status_code == 404
        assert client.get("/people", query_string={"name": text}).json["items"] == []
        assert client.get("/people", query_string={"name__contains": text}).json["items"] == []
        assert client.get("/people", query_string={"email__in": text}).json["items"] == []
        assert client.get("/people", query_string={"age": text}).status_code == 400
        assert client.get("/people", query_string={text: "1"}).status_code == 400
        assert client.get("/people", query_string={f"name__{text}": "1"}).status_code == 400
        assert client.get("/people", query_string={"sort": text}).status_code == 400
        assert client.post("/people", json={text: "x", "email": "k@x.io"}).status_code == 400
        created = client.post("/people", json={"email": text[:40], "name": text[:20]})
        assert created.status_code == 201
        assert created.json["email"] == text[:40]
        assert client.delete(f"/people/{created.json['id']}").status_code == 204
        assert client.patch(f"/people/{people[0]['id']}", json={"name": text[:20]}).json["name"] == text[:20]
    listing = client.get("/people?sort=email")
    assert listing.json["total"] == 3
    assert ids(listing) == ["p0@x.io", "p1@x.io", "p2@x.io"]


def test_existing_table_with_another_shape_is_a_startup_error(tmp_path, db):
    url, table = db
    engine = sa.create_engine(normalise_url(url))
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, email TEXT, age TEXT, "
                             f"legacy TEXT NOT NULL)"))
    engine.dispose()
    with pytest.raises(ConfigError) as caught:
        make_app(tmp_path, db, fields="        email: {type: string, unique: true}\n        age: {type: integer}\n"
                                      "        born: {type: date}\n")
    problems = caught.value.problems
    where = f"{tmp_path / 'backworks.yaml'}:7: endpoints.people.database.table"
    hint = "(alter or drop the table, or change the declared fields)"
    assert problems == [f"{where}: table '{table}' exists with a different shape: {problem} {hint}" for problem in (
        "column 'email' is declared unique but has no unique constraint or index",
        "column 'age' is TEXT but is declared integer",
        "column 'born' is missing (declared date)",
        "column 'legacy' is NOT NULL without a default but is not declared, so no row could be created",
    )]


def test_existing_table_of_the_same_shape_is_used(tmp_path, db):
    first = make_app(tmp_path, db)
    add(first.test_client(), email="kept@x.io")
    first.extensions["backworks"].runtime.close()
    second = make_app(tmp_path, db, extra="      create_table: false\n")
    assert ids(second.test_client().get("/people")) == ["kept@x.io"]
    second.extensions["backworks"].runtime.close()


def test_missing_table_without_create_table_is_a_startup_error(tmp_path, db):
    with pytest.raises(ConfigError) as caught:
        make_app(tmp_path, db, extra="      create_table: false\n")
    assert caught.value.problems[0].endswith(f"table '{db[1]}' does not exist in "
                                             f"{sa.make_url(normalise_url(db[0])).render_as_string()} "
                                             f"(create it, or set create_table: true)")


def test_operations_decide_the_methods_answered(tmp_path, db):
    app = make_app(tmp_path, db, extra="      operations: [list, get, create]\n")
    client = app.test_client()
    created = add(client, email="a@x.io")
    response = client.delete(f"/people/{created['id']}")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert client.put("/people", json={}).status_code == 405
    app.extensions["backworks"].runtime.close()


def test_client_chosen_string_id(tmp_path, db):
    app = make_app(tmp_path, db, fields="        slug: {type: string, max_length: 30}\n"
                                        "        title: {type: string, required: true}\n",
                   extra="      id_field: slug\n")
    client = app.test_client()
    response = client.post("/people", json={"slug": "hello world", "title": "Hi"})
    assert response.status_code == 201
    assert response.headers["Location"] == "/people/hello%20world"
    assert client.get("/people/hello%20world").json == {"slug": "hello world", "title": "Hi"}
    conflict = client.post("/people", json={"slug": "hello world", "title": "Again"})
    assert conflict.status_code == 409
    assert conflict.json["error"]["message"] == "slug 'hello world' is already taken (it must be unique)"
    assert client.post("/people", json={"title": "x"}).json["error"]["details"] == [
        {"field": "slug", "message": "is required"}]
    app.extensions["backworks"].runtime.close()


def test_unreachable_database_is_a_startup_error(tmp_path):
    url = "postgresql://nobody@127.0.0.1:1/none"
    with pytest.raises(ConfigError) as caught:
        make_app(tmp_path, (url, "things"))
    assert caught.value.problems[0].startswith(
        f"{tmp_path / 'backworks.yaml'}:7: endpoints.people.database.table: cannot use database "
        f"postgresql+psycopg://nobody@127.0.0.1:1/none: ")


@pytest.mark.parametrize("fields, extra, message", [
    ("        age: {type: integer, max_length: 3}\n", "",
     "endpoints.people.database.fields.age.max_length: applies to string and text fields only (this one is "
     "integer)"),
    ("        name: {type: string, min: 3}\n", "",
     "endpoints.people.database.fields.name.min: applies to integer and number fields only (this one is string)"),
    ("        age: {type: integer, default: old}\n", "",
     "endpoints.people.database.fields.age.default: default 'old' must be an integer"),
    ("        sort: {type: string}\n", "",
     "endpoints.people.database.fields.sort.type: field name 'sort' is reserved for query parameters (choose "
     "another name)"),
    ("        name: {type: string}\n", "      default_limit: 50\n",
     "endpoints.people.database.default_limit: is larger than max_limit (5)"),
    ("        name: {type: strng}\n", "",
     "endpoints.people.database.fields.name.type: unallowed value 'strng' (did you mean 'string'?)"),
])
def test_impossible_declarations_are_config_errors(tmp_path, fields, extra, message):
    with pytest.raises(ConfigError) as caught:
        make_app(tmp_path, (f"sqlite:///{tmp_path / 'x.db'}", "things"), fields=fields, extra=extra)
    assert [p.split(": ", 1)[1] for p in caught.value.problems] == [message]


def test_postgresql_urls_use_the_psycopg_driver():
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"


def test_reads_survive_a_dropped_postgresql_connection(tmp_path, postgres_url):
    app = make_app(tmp_path, (postgres_url, f"t_{uuid.uuid4().hex[:10]}"))
    client = app.test_client()
    created = add(client, email="kept@x.io")
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        killed = conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                      "WHERE application_name = :name"), {"name": APPLICATION_NAME}).all()
    assert killed
    assert client.get(f"/people/{created['id']}").json == created
    runtime = app.extensions["backworks"].runtime
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {runtime.endpoints['people'].mode.name}"))
    engine.dispose()
    runtime.close()


def test_unsupported_database_url_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        make_app(tmp_path, ("mysql://u@127.0.0.1/db", "things"))
    assert caught.value.problems == [f"{tmp_path / 'backworks.yaml'}:1: database.url: unsupported database "
                                     f"'mysql' (use sqlite:/// or postgresql://)"]


def test_head_answers_like_get_without_a_body(client):
    created = add(client, email="h@x.io")
    response = client.head(f"/people/{created['id']}")
    assert response.status_code == 200 and response.data == b""
    assert client.head("/people").headers["X-Total-Count"] == "1"


def test_check_creates_nothing_but_still_compares_existing_tables(tmp_path):
    from backworks.loaded import load_runtime

    db_file = tmp_path / "fresh.db"
    config = write_config(tmp_path, f'database: {{url: "sqlite:///{db_file}"}}\nendpoints:\n  people:\n'
                                    f"    path: /people\n    mode: database\n    database:\n      table: people\n"
                                    f"      fields:\n        age: {{type: integer}}\n")
    load_runtime(config, options={"check_only": True}).close()
    assert not db_file.exists()
    engine = sa.create_engine(f"sqlite:///{db_file}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE other (id INTEGER PRIMARY KEY)"))
    load_runtime(config, options={"check_only": True}).close()
    assert not sa.inspect(engine).has_table("people")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE people (id INTEGER PRIMARY KEY, age TEXT)"))
    engine.dispose()
    with pytest.raises(ConfigError) as caught:
        load_runtime(config, options={"check_only": True})
    assert "column 'age' is TEXT but is declared integer" in caught.value.problems[0]


def test_a_reload_that_changes_a_column_type_is_refused_and_the_old_config_keeps_serving(tmp_path, db):
    app = make_app(tmp_path, db)
    client = app.test_client()
    add(client, email="still@x.io", age=3)
    config = tmp_path / "backworks.yaml"
    config.write_text(config.read_text().replace("age: {type: integer, min: 0, max: 150}", "age: {type: boolean}"))
    backworks = app.extensions["backworks"]
    assert backworks.reload("test") is False
    assert "column 'age' is " in backworks.last_error and "but is declared boolean" in backworks.last_error
    assert ids(client.get("/people?age=3")) == ["still@x.io"]
    backworks.runtime.close()


def test_concurrent_creates_of_one_unique_value_make_exactly_one_record(tmp_path, db):
    from concurrent.futures import ThreadPoolExecutor

    app = make_app(tmp_path, db)

    def attempt(i):
        return app.test_client().post("/people", json={"email": "race@x.io", "age": i}).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = sorted(pool.map(attempt, range(12)))
    assert statuses == [201] + [409] * 11
    assert app.test_client().get("/people?email=race@x.io").json["total"] == 1
    app.extensions["backworks"].runtime.close()
