"""Answer 401 unless the request carries one of the configured keys in X-Api-Key (before_request).

Use it with `on_error: closed`: if the check itself fails, the client gets 503, never a free pass.
config: {keys: ["secret-1", "secret-2"]}
"""
import hmac


def on_load(config):
    if not config.get("keys"):
        raise ValueError("api_key needs at least one key in config.keys")


def before_request(request):
    given = request["headers"].get("x-api-key", "")
    for key in config["keys"]:
        if given and hmac.compare_digest(given, key):
            return None
    return {"response": {
        "status": 401,
        "headers": {"www-authenticate": "ApiKey"},
        "json": {"error": {"code": "unauthorized", "message": "missing or unknown X-Api-Key header"}},
    }}


def health_check():
    return len(config["keys"]) > 0
