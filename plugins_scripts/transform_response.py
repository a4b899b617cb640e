"""Reshape JSON responses: drop internal fields and wrap the result in an envelope (after_response).

config: {drop: ["internal_id"], envelope: "data"}   # envelope "" or absent: no wrapping
"""


def clean(value, drop):
    if isinstance(value, dict):
        return {k: clean(v, drop) for k, v in value.items() if k not in drop}
    if isinstance(value, list):
        return [clean(item, drop) for item in value]
    return value


def after_response(request, response):
    if "json" not in response:
        return None
    body = clean(response["json"], config.get("drop", []))
    envelope = config.get("envelope")
    if envelope:
        body = {envelope: body}
    return dict(response, json=body)
