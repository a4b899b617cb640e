"""A config with a problem of every load stage, and what `backworks check` must print for it."""
from __future__ import annotations

from tests.helpers.basics import write_config

EVERY_STAGE = """\
name: every-stage
admin: {token: "${NEWCOMER_UNSET_TOKEN}"}
server: {max_body_bytes: -1}
upstreams:
  up: {targets: [{url: "http://127.0.0.1:9"}]}
plugins:
  refused: {script: refused.py}
  missing: {script: nowhere.py}
endpoints:
  typo: {path: /typo, mode: mok}
  a: {path: /same, mock: {json: {a: 1}}}
  b: {path: /same, mock: {json: {b: 1}}}
  prox: {path: /p, mode: proxy, proxy: {upstream: upp}}
  param: {path: "/x/{id:integer}", mock: {json: {}}}
  filed: {path: /f, mock: {file: missing.json}}
  tmpl: {path: /t, mock: {body: "{{ oops"}}
  rows: {path: /rows, mode: database, database: {table: rows, fields: {n: {type: integer, max_length: 3}}}}
"""


def write_every_stage(folder):
    """A config with a problem of every load stage: variables, schema, references, routes, plugins, modes (a
    missing file, a template, an impossible field declaration)."""
    (folder / "refused.py").write_text("import os\n\ndef before_request(request):\n    return None\n")
    return write_config(folder, EVERY_STAGE)


def every_stage_lines(path) -> list:
    """What `check` must print for write_every_stage's config, in order."""
    allowed = ("base64, collections, datetime, hashlib, hmac, json, math, random, re, string, time, types, "
               "urllib.parse, uuid")
    return [
        f"{path}:2: admin.token: environment variable NEWCOMER_UNSET_TOKEN is not set (set it, or give a "
        "default: ${NEWCOMER_UNSET_TOKEN:-value})",
        f"{path}:3: server.max_body_bytes: min value is 0, got -1",
        f"{path}:7: plugins.refused.script: {path.parent / 'refused.py'}:1: import of 'os' is not allowed "
        f"(allowed: {allowed})",
        f"{path}:8: plugins.missing.script: file not found: {path.parent / 'nowhere.py'}",
        f"{path}:10: endpoints.typo.mode: unallowed value 'mok' (did you mean 'mock'?)",
        f"{path}:12: endpoints.b.path: GET /same is already served by endpoint 'a' (each method and path may "
        "appear once)",
        f"{path}:13: endpoints.prox.proxy.upstream: unknown upstream 'upp' (did you mean 'up'?)",
        f"{path}:14: endpoints.param.path: unknown parameter type 'integer' in {{id:integer}} (use one of: str, "
        "string, int, float, path, uuid)",
        f"{path}:15: endpoints.filed.mock.file: cannot read {path.parent / 'missing.json'}: No such file or "
        "directory",
        f"{path}:16: endpoints.tmpl.mock.body: template error: unexpected end of template, expected 'end of "
        "print statement'. (template line 1)",
        f"{path}:17: endpoints.rows.database.fields.n.max_length: applies to string and text fields only (this "
        "one is integer)",
        f"{path}: left out of the later checks until their problems above are fixed: endpoints.typo, "
        "plugins.missing, endpoints.prox",
        f"11 problem(s) in {path}",
    ]
