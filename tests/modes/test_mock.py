"""Mock mode: bodies, conditions, sequences, random choice, delays, faults and templates."""
from __future__ import annotations

import time

from backworks import create_app
from tests.helpers.basics import write_config


def make_client(tmp_path, endpoints_yaml: str):
    return create_app(write_config(tmp_path, "endpoints:\n" + endpoints_yaml)).test_client()


def test_static_json_with_status_and_headers(tmp_path):
    client = make_client(tmp_path, """
  a:
    path: /a
    mock: {status: 201, headers: {X-Shop: "1"}, json: {ok: true}}
""")
    response = client.get("/a")
    assert response.status_code == 201
    assert response.headers["X-Shop"] == "1"
    assert response.headers["Content-Type"] == "application/json"
    assert response.get_json() == {"ok": True}


def test_static_body_is_serialised_once_at_load(tmp_path):
    client = make_client(tmp_path, "  a: {path: /a, mock: {json: [1, 2, 3]}}\n")
    canned = client.application.extensions["backworks"].runtime.endpoints["a"].mode.default.single
    assert canned.body == b"[1,2,3]"
    assert canned.json_template is None
    assert client.get("/a").data == b"[1,2,3]"


def test_text_body_and_content_type(tmp_path):
    client = make_client(tmp_path, "  a: {path: /a, mock: {body: hello, content_type: text/csv}}\n")
    response = client.get("/a")
    assert response.data == b"hello"
    assert response.headers["Content-Type"] == "text/csv"


def test_file_body_with_guessed_type(tmp_path):
    (tmp_path / "page.html").write_text("<h1>hi</h1>")
    client = make_client(tmp_path, "  a: {path: /a, mock: {file: page.html}}\n")
    response = client.get("/a")
    assert response.data == b"<h1>hi</h1>"
    assert response.headers["Content-Type"] == "text/html"


def test_conditions_on_query_header_and_json_body(tmp_path):
    client = make_client(tmp_path, """
  a:
    path: /a
    methods: [GET, POST]
    mock:
      responses:
        - when: {query: {type: tea}}
          json: {matched: query}
        - when: {headers: {X-Role: admin}}
          json: {matched: header}
        - when: {json: {order.kind: bulk}}
          json: {matched: json}
        - when: {method: POST, body_contains: urgent}
          json: {matched: body}
      json: {matched: none}
""")
    assert client.get("/a?type=tea").get_json() == {"matched": "query"}
    assert client.get("/a", headers={"x-role": "admin"}).get_json() == {"matched": "header"}
    assert client.post("/a", json={"order": {"kind": "bulk"}}).get_json() == {"matched": "json"}
    assert client.post("/a", data="very urgent").get_json() == {"matched": "body"}
    assert client.get("/a?type=coffee").get_json() == {"matched": "none"}


def test_wildcard_condition_requires_presence(tmp_path):
    client = make_client(tmp_path, """
  a:
    path: /a
    mock:
      responses:
        - when: {headers: {Authorization: "*"}}
          status: 200
      status: 401
""")
    assert client.get("/a", headers={"Authorization": "Bearer x"}).status_code == 200
    assert client.get("/a").status_code == 401


def test_sequence_cycles_by_default(tmp_path):
    client = make_client(tmp_path, """
  a:
    path: /a
    mock: {sequence: [{body: one}, {body: two}]}
""")
    assert [client.get("/a").data for _ in range(5)] == [b"one", b"two", b"one", b"two", b"one"]


def test_sequence_can_repeat_last(tmp_path):
    client = make_client(tmp_path, """
  a:
    path: /a
    mock: {sequence: [{status: 503}, {status: 200}], sequence_end: repeat_last}
""")
    assert [client.get("/a").status_code for _ in range(4)] == [503, 200, 200, 200]


def test_random_choice_respects_weights(tmp_path):
    client = make_client(tmp_path, """
  a:
    path: /a
    mock: {random: [{body: never, weight: 0}, {body: often, weight: 3}, {body: sometimes, weight: 1}]}
""")
    seen = {client.get("/a").data for _ in range(200)}
    assert seen == {b"often", b"sometimes"}


def test_delay_is_applied(tmp_path):
    client = make_client(tmp_path, "  a: {path: /a, mock: {body: slow, delay_ms: 120}}\n")
    started = time.perf_counter()
    assert client.get("/a").data == b"slow"
    assert time.perf_counter() - started >= 0.12


def test_fault_injection_status(tmp_path):
    client = make_client(tmp_path, "  a: {path: /a, mock: {body: ok, fault: {probability: 1, status: 502}}}\n")
    response = client.get("/a")
    assert response.status_code == 502
    assert response.get_json()["error"]["code"] == "injected_fault"
    assert response.get_json()["error"]["message"] == "fault injected by endpoint 'a'"


def test_fault_probability_zero_never_fires(tmp_path):
    client = make_client(tmp_path, "  a: {path: /a, mock: {body: ok, fault: {probability: 0, status: 502}}}\n")
    assert {client.get("/a").status_code for _ in range(50)} == {200}


def test_templates_see_query_headers_body_and_request_id(tmp_path):
    client = make_client(tmp_path, """
  a:
    path: /a/{id}
    methods: [POST]
    mock:
      headers: {X-Echo: "{{ headers['x-in'] }}"}
      body: "{{ method }} {{ path.id }} q={{ query.q }} n={{ json.n + 1 }} rid={{ request_id }}"
""")
    response = client.post("/a/7?q=z", json={"n": 41}, headers={"X-In": "hey", "X-Request-Id": "r1"})
    assert response.data == b"POST 7 q=z n=42 rid=r1"
    assert response.headers["X-Echo"] == "hey"


def test_template_cannot_reach_python_internals(tmp_path):
    client = make_client(tmp_path, """
  a:
    path: /a
    mock: {body: "{{ ''.__class__.__mro__[1].__subclasses__() }}"}
""")
    response = client.get("/a")
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "template_error"
    assert response.get_json()["error"]["message"] == (
        "the mock template failed: access to attribute '__class__' of 'str' object is unsafe.")


def test_template_newlines_cannot_split_headers(tmp_path):
    client = make_client(tmp_path, """
  a:
    path: /a
    mock: {headers: {X-Q: "{{ query.v }}"}, body: ok}
""")
    response = client.get("/a?v=a%0d%0aSet-Cookie:%20x=1")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    assert response.headers["X-Q"] == "a  Set-Cookie: x=1"


def test_template_can_be_disabled(tmp_path):
    client = make_client(tmp_path, "  a: {path: /a, mock: {body: '{{ raw }}', template: false}}\n")
    assert client.get("/a").data == b"{{ raw }}"
