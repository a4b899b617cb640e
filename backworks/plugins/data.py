"""Turn requests and replies into the plain data plugin hooks see, and hook results back into them."""
from __future__ import annotations

import json
import logging

from backworks.http import JSON_TYPE, Reply, RequestData, is_json_type, loads_json, same_json
from backworks.sandbox.values import IGNORED_HEADERS, equal_is_same, header_items

logger = logging.getLogger(__name__)

RESPONSE_BODY_CAP = 1024 * 1024  # larger, streamed or binary bodies are not given to after_response
TEXT_TYPE = "text/plain; charset=utf-8"
RECOMPUTED = ("content-length", "transfer-encoding")
# What hooks return was validated and normalised by backworks.sandbox.values (request(), response()): the one
# home of the hook contract. Nothing here checks it again.


def request_data(request: RequestData, with_body: bool) -> dict:
    """The request as hooks see it; streaming endpoints' hooks get no body (it stays unread)."""
    return request.to_dict(include_body=with_body)


def apply_request(request: RequestData, original: dict, final: dict, with_body: bool,
                  changed: set | None = None) -> RequestData:
    """Return `request` when hooks changed nothing, else a request rebuilt from their dict.

    changed: the fields hooks may have changed (the others are `original`'s), when the phase knows them.
    """
    if final is original or changed is not None and not changed:
        return request
    if len(final) != len(original):  # (a request of the server's shape has every field: no merge)
        final = {**original, **final}
    get = original.get
    names, changed = final.keys() if changed is None else changed, set()
    for name in names:
        if final[name] != get(name):
            changed.add(name)
    if not equal_is_same(original):  # route parameters or JSON, where equal is not the same: 1 == 1.0 == True
        for name in ("json", "path_params"):
            if name not in changed and not same_json(final.get(name), get(name)):
                changed.add(name)
    if not changed:
        return request
    keep_body = not with_body or not ("body" in changed or "json" in changed)
    if not keep_body and "transfer-encoding" in (final.get("headers") or {}):  # the new body has a length
        final = {**final, "headers": {k: v for k, v in final["headers"].items() if k != "transfer-encoding"}}
    return request.replaced(final, original, keep_body=keep_body, changed=changed)


def response_data(reply: Reply) -> dict:
    """The reply as after_response hooks see it: status, headers and `json` (parsed JSON) or `body` (text).

    Binary, streamed or larger bodies are withheld: the dict then has neither `body` nor `json`.
    """
    headers: dict = {}
    for key, value in reply.headers:
        lkey = key.lower()
        headers[lkey] = f"{headers[lkey]}, {value}" if lkey in headers else value
    data = {"status": reply.status, "headers": headers}
    raw = reply.body
    if not isinstance(raw, (bytes, bytearray)) or len(raw) > RESPONSE_BODY_CAP:
        return data
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return data
    if text and is_json_type(headers.get("content-type")):
        try:
            data["json"] = loads_json(raw)
            return data
        except (ValueError, RecursionError):  # not JSON (NaN, say: given as text), or nested past the parser
            pass
    data["body"] = text
    return data


def apply_response(reply: Reply, original: dict, final: dict) -> Reply:
    """Return `reply` when hooks changed nothing, else the reply their (complete) dict describes.

    A body the hooks were not given (binary, streamed, too large) is kept unless they set a non-empty one.
    """
    if final is original or (final == original and same_json(final.get("json"), original.get("json"))):
        return reply
    status = final.get("status", reply.status)
    headers = _merge_headers(reply.headers, original["headers"], final.get("headers") or {})
    body = reply.body
    withheld = "body" not in original and "json" not in original
    if "json" in final and ("json" not in original or not same_json(final["json"], original["json"])):
        body = _dump(final["json"])
        headers = _set_header(headers, "Content-Type", JSON_TYPE, only_if_missing="json" in original)
    elif "body" in final and final["body"] != original.get("body") and not (withheld and not final["body"]):
        body = _encode(final["body"])
    if body is not reply.body:
        headers = [(k, v) for k, v in headers if k.lower() not in RECOMPUTED]
    return Reply(status, headers, body, reply.meta)


def reply_from_response(response: dict) -> Reply:
    """Build the reply a before_request hook answered with ({"response": {...}}, validated by values.response)."""
    headers = [(name, value) for name, value in header_items(response.get("headers") or {})
               if name.lower() not in IGNORED_HEADERS]
    if response.get("json") is not None:
        body = _dump(response["json"])
        headers = _set_header(headers, "Content-Type", JSON_TYPE, only_if_missing=True)
    else:
        body = _encode(response.get("body") or "")
        if body:
            headers = _set_header(headers, "Content-Type", TEXT_TYPE, only_if_missing=True)
    return Reply(response.get("status", 200), headers, body)


def _merge_headers(raw: list, original: dict, new) -> list:
    # Keep the reply's own pairs (case, repeated Set-Cookie) for every header a hook left alone, and always
    # for framing and hop-by-hop headers (a hook's values for those are ignored).
    pairs = [(name, value) for name, value in header_items(new)]
    kept = {name.lower() for name, value in pairs if original.get(name.lower()) == value} | IGNORED_HEADERS
    headers = [(k, v) for k, v in raw if k.lower() in kept]
    headers.extend((name, value) for name, value in pairs if name.lower() not in kept)
    return headers


def _set_header(headers: list, name: str, value: str, only_if_missing: bool) -> list:
    lname = name.lower()
    if only_if_missing and any(k.lower() == lname for k, _ in headers):
        return headers
    return [(k, v) for k, v in headers if k.lower() != lname] + [(name, value)]


def _dump(value) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _encode(body) -> bytes:
    if isinstance(body, str):
        return body.encode()
    raise ValueError(f"body must be a string, not {type(body).__name__}")
