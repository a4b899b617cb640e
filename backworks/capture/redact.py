"""What a capture stores: the secrets policy applied to an exchange, bodies cut at the cap."""
from __future__ import annotations

import json

from backworks import secrets


class Redactor:
    """Applies the config's secrets policy to an exchange before it is stored, then cuts bodies at the cap."""

    def __init__(self, capture: dict, policy: secrets.SecretsPolicy):
        self.policy = policy
        self.max_body = capture["max_body_bytes"]

    def prepare(self, row: dict) -> dict:
        """Turn a raw exchange into a stored row (runs in the writer thread)."""
        row = redact_row(row, self.policy)
        row["request_body"] = row["request_body"][:self.max_body]
        row["response_body"] = row["response_body"][:self.max_body]
        return row


def headers_json(pairs) -> str:
    """Serialise a header list as JSON text."""
    return json.dumps([[str(k), str(v)] for k, v in pairs])


def headers_from_json(text: str) -> list:
    """Parse a stored header list."""
    return [tuple(pair) for pair in json.loads(text or "[]")]


def redact_row(row: dict, policy: secrets.SecretsPolicy) -> dict:
    """Return a capture row (raw header lists or stored JSON) with the policy's secrets redacted.

    Secrets found by name (headers, query, JSON and form fields) are remembered, then hidden wherever
    else they appear: text bodies, URLs, other headers."""
    redaction = policy.redaction()
    out = dict(row)
    for side in ("request", "response"):
        pairs = row[f"{side}_headers"]
        pairs = headers_from_json(pairs) if isinstance(pairs, str) else list(pairs)
        out[f"{side}_headers"] = redaction.headers(pairs)
    out["url"] = redaction.url(row.get("url") or "")
    out["query"] = redaction.query(row.get("query") or "")
    for side in ("request", "response"):
        body = bytes(row[f"{side}_body"] or b"")
        complete = row.get(f"{side}_body_size", len(body)) == len(body)
        out[f"{side}_body"] = redaction.body(body, _find(out[f"{side}_headers"], "content-type"), complete)
    for key in ("url", "query", "request_body", "response_body"):
        out[key] = redaction.text(out[key])
    for side in ("request", "response"):
        out[f"{side}_headers"] = headers_json((k, redaction.text(str(v))) for k, v in out[f"{side}_headers"])
    return out


def _find(pairs, name: str):
    return next((value for key, value in pairs if str(key).lower() == name), None)
