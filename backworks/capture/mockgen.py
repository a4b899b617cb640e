"""Mocks from capture: turn recorded exchanges into mock endpoints a fresh config loads directly."""
from __future__ import annotations

import json
import logging
import re
from collections import OrderedDict
from pathlib import Path
from urllib.parse import parse_qsl

from backworks.capture.redact import headers_from_json, redact_row
from backworks.config.load import escape_substitution
from backworks.http import is_json_type
from backworks.modes.proxy import HOP_BY_HOP
from backworks.secrets import DEFAULT, REDACTED, SecretsPolicy

logger = logging.getLogger(__name__)

ID_SEGMENT = re.compile(r"^(\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|"
                        r"(?=[A-Za-z0-9_-]*\d)[0-9a-fA-F]{12,}|(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{20,})$")
SKIPPED_HEADERS = HOP_BY_HOP | {"content-length", "content-type", "date", "server", "x-request-id"}
UNSAFE_SEGMENT = re.compile(r"[{}<>]|^[:*]")
NOT_RECORDED = {"error": {"code": "not_found", "message": "no recorded answer for this request"}}


def path_template(path: str) -> tuple[str, list] | None:
    """Return (/users/{user_id}, [(name, value)]) for a path whose id-like segments become params."""
    template, params = [], []
    segments = path.split("/")
    for index, segment in enumerate(segments):
        if UNSAFE_SEGMENT.search(segment):
            return None
        if index and ID_SEGMENT.match(segment):
            name = _param_name(segments[index - 1], [n for n, _ in params])
            params.append((name, segment))
            template.append("{" + name + "}")
        else:
            template.append(segment)
    return "/".join(template) or "/", params


def _param_name(previous: str, taken: list) -> str:
    word = re.sub(r"[^a-z0-9]+", "_", previous.lower()).strip("_")
    base = "id"
    if word and word[0].isalpha() and not ID_SEGMENT.match(previous):
        base = (word[:-1] if word.endswith("s") and len(word) > 3 else word) + "_id"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}{n}", n + 1
    return name


def build_mocks(rows: list, files_dir: Path | None = None, name: str = "mocks-from-capture",
                policy: SecretsPolicy = DEFAULT) -> dict:
    """Return a config dict with one mock endpoint per method and path template of the recorded rows.

    Secrets are redacted by `policy`, and every `$` is written `$$`: recorded data is served as
    recorded, never filled in from the environment of the server that loads the mocks."""
    groups: dict = OrderedDict()
    for row in (redact_row(row, policy) for row in rows):
        shape = path_template(row["path"])
        if shape is None:
            logger.warning("path %s cannot be written as a route; skipped", row["path"])
            continue
        template, params = shape
        key = (row["method"], template)
        variant = (tuple(params), _query_conditions(row["query"], policy))
        groups.setdefault(key, OrderedDict()).setdefault(variant, []).append(row)
    writer = _FileWriter(files_dir)
    endpoints: dict = {}
    for (method, template), variants in groups.items():
        endpoints[_endpoint_name(method, template, endpoints)] = {
            "path": template, "methods": [method], "mode": "mock",
            "mock": escape_substitution(_mock_block(variants, writer, policy))}
    return {"name": name, "mode": "mock", "endpoints": endpoints}


def _query_conditions(query: str, policy: SecretsPolicy) -> tuple:
    # a secret parameter is no condition: its value was redacted, and a mock must not hold it anyway
    first: dict = {}
    for key, value in parse_qsl(query or "", keep_blank_values=True):
        if not policy.is_secret_param(key) and REDACTED not in value:
            first.setdefault(key, value)
    return tuple(sorted(first.items()))


def _mock_block(variants: dict, writer: "_FileWriter", policy: SecretsPolicy) -> dict:
    if len(variants) == 1 and not any(next(iter(variants))):
        return _choice(next(iter(variants.values())), writer, policy)
    responses = []
    for (params, query), rows in sorted(variants.items(), key=lambda item: -len(item[0][0]) - len(item[0][1])):
        when: dict = {}
        if params:
            when["path"] = dict(params)
        if query:
            when["query"] = dict(query)
        responses.append({"when": when, **_choice(rows, writer, policy)})
    return {"responses": responses, "status": 404, "json": NOT_RECORDED}


def _choice(rows: list, writer: "_FileWriter", policy: SecretsPolicy) -> dict:
    canned = [_canned(row, writer, policy) for row in rows]
    distinct = [c for i, c in enumerate(canned) if i == 0 or c != canned[i - 1]]
    if len(distinct) == 1:
        return distinct[0]
    return {"sequence": canned, "sequence_end": "repeat_last"}


def _canned(row: dict, writer: "_FileWriter", policy: SecretsPolicy) -> dict:
    headers = headers_from_json(row["response_headers"])
    content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
    out: dict = {"status": row["status"]}
    kept = {k: v for k, v in headers if k.lower() not in SKIPPED_HEADERS and not k.lower().startswith("x-backworks")
            and not policy.is_secret_header(k)}  # a redacted Set-Cookie is of no use to a client
    if kept:
        out["headers"] = kept
    body = bytes(row["response_body"])
    if body and is_json_type(content_type):
        try:
            out["json"] = json.loads(body)
        except ValueError:
            pass
    if "json" not in out:
        try:
            out["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            out["file"] = writer.write(body)
    if content_type:
        out["content_type"] = content_type
    if _has_template_syntax(out.get("json", out.get("body"))) or any(_has_template_syntax(v) for v in kept.values()):
        out["template"] = False
    return out


def _has_template_syntax(value) -> bool:
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(_has_template_syntax(k) or _has_template_syntax(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_template_syntax(v) for v in value)
    return False


def _endpoint_name(method: str, template: str, taken: dict) -> str:
    words = re.findall(r"[A-Za-z0-9]+", template.replace("{", "by_").replace("}", ""))
    base = f"{method.lower()}_{'_'.join(words) or 'root'}"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    return name


class _FileWriter:
    """Writes binary bodies next to the generated config (mock `file:` responses)."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.count = 0

    def write(self, data: bytes) -> str:
        """Write one body; return its path relative to the config."""
        if self.folder is None:
            raise ValueError("a binary response needs a folder for its body files")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.count += 1
        path = self.folder / f"body_{self.count:04d}.bin"
        path.write_bytes(data)
        return f"{self.folder.name}/{path.name}"
