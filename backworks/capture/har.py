"""HAR 1.2 export and import of captured exchanges."""
from __future__ import annotations

import base64
import hashlib
import logging
from datetime import datetime, timezone
from urllib.parse import parse_qsl, unquote, urlsplit

from werkzeug.http import HTTP_STATUS_CODES

from backworks import __version__
from backworks.capture.redact import headers_from_json, headers_json, redact_row
from backworks.secrets import DEFAULT, SecretsPolicy

logger = logging.getLogger(__name__)


class HarError(ValueError):
    """A HAR file that cannot be imported; the message says where and why."""


def export_har(rows: list, policy: SecretsPolicy = DEFAULT) -> dict:
    """Return a HAR 1.2 document for stored exchanges (oldest first), secrets redacted by `policy`."""
    # rows stored before a policy change (or imported raw) are redacted again on the way out
    return {"log": {"version": "1.2", "creator": {"name": "backworks", "version": __version__},
                    "entries": [_entry(redact_row(row, policy)) for row in rows]}}


def _entry(row: dict) -> dict:
    request_headers = headers_from_json(row["request_headers"])
    response_headers = headers_from_json(row["response_headers"])
    request = {
        "method": row["method"], "url": row["url"], "httpVersion": "HTTP/1.1", "cookies": [],
        "headers": _pairs(request_headers), "queryString": _pairs(parse_qsl(row["query"], keep_blank_values=True)),
        "headersSize": -1, "bodySize": row["request_body_size"],
    }
    if row["request_body_size"] or row["request_body"]:
        request["postData"] = {"mimeType": _find(request_headers, "content-type") or "", "params": [],
                               **_text(bytes(row["request_body"]))}
    content = {"size": row["response_body_size"], "mimeType": _find(response_headers, "content-type") or "",
               **_text(bytes(row["response_body"]))}
    return {
        "startedDateTime": datetime.fromtimestamp(row["recorded_at"], timezone.utc).isoformat(),
        "time": row["duration_ms"],
        "request": request,
        "response": {"status": row["status"], "statusText": HTTP_STATUS_CODES.get(row["status"], ""),
                     "httpVersion": "HTTP/1.1", "cookies": [], "headers": _pairs(response_headers),
                     "content": content, "redirectURL": _find(response_headers, "location") or "",
                     "headersSize": -1, "bodySize": row["response_body_size"]},
        "cache": {},
        "timings": {"send": 0, "wait": row["duration_ms"], "receive": 0},
        "_backworks": {"endpoint": row["endpoint"], "path": row["path"], "upstream": row["upstream"],
                       "request_body_hash": row["request_body_hash"]},
    }


def _pairs(items) -> list:
    return [{"name": k, "value": v} for k, v in items]


def _find(headers, name: str):
    return next((v for k, v in headers if k.lower() == name), None)


def _text(data: bytes) -> dict:
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"text": base64.b64encode(data).decode("ascii"), "encoding": "base64"}


def import_har(document: dict) -> list:
    """Turn a HAR document into store rows; HarError names the entry and field that is wrong."""
    if not isinstance(document, dict) or not isinstance(document.get("log"), dict):
        raise HarError("not a HAR file: the top level must be an object with a 'log' object")
    entries = document["log"].get("entries")
    if not isinstance(entries, list):
        raise HarError("not a HAR file: log.entries must be a list")
    rows = []
    for index, entry in enumerate(entries):
        try:
            rows.append(_row(entry))
        except (KeyError, TypeError, ValueError) as exc:
            raise HarError(f"log.entries[{index}]: {_why(exc)}") from None
    return rows


def _why(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return str(exc) or type(exc).__name__


def _row(entry: dict) -> dict:
    request, response = entry["request"], entry["response"]
    url = urlsplit(request["url"])
    extra = entry.get("_backworks") or {}
    request_body = _body(request.get("postData") or {})
    response_body = _body(response.get("content") or {})
    started = entry.get("startedDateTime")
    return {
        "recorded_at": datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp() if started else 0.0,
        "endpoint": extra.get("endpoint", ""),
        "method": str(request["method"]).upper(),
        "url": request["url"],
        "path": extra.get("path") or unquote(url.path) or "/",
        "query": url.query,
        "request_headers": headers_json((h["name"], h["value"]) for h in request.get("headers") or []),
        "request_body": request_body,
        "request_body_size": max(int(request.get("bodySize") or 0), len(request_body)),
        "request_body_hash": extra.get("request_body_hash") or hashlib.sha256(request_body).hexdigest(),
        "status": int(response["status"]),
        "response_headers": headers_json((h["name"], h["value"]) for h in response.get("headers") or []),
        "response_body": response_body,
        "response_body_size": max(int((response.get("content") or {}).get("size") or 0), len(response_body)),
        "duration_ms": float(entry.get("time") or 0),
        "upstream": extra.get("upstream", ""),
    }


def _body(part: dict) -> bytes:
    text = part.get("text") or ""
    if part.get("encoding") == "base64":
        return base64.b64decode(text)
    return text.encode("utf-8")
