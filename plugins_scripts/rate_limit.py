"""Allow `limit` requests per client per `window_s` seconds; answer 429 beyond (before_request).

A fixed-window counter on `state`: per worker with the in-memory backend, shared by every worker
and machine with `state: {url: redis://...}`. Use `on_error: closed` to refuse traffic when the
counter cannot be read.
config: {limit: 60, window_s: 60}
"""
import time


def before_request(request):
    limit = config.get("limit", 60)
    window = config.get("window_s", 60)
    now = time.time()
    bucket = int(now // window)
    count = state.incr(request["client_ip"] + ":" + str(bucket), ttl=window)
    if count <= limit:
        return None
    retry_after = int(window - now % window) + 1
    return {"response": {
        "status": 429,
        "headers": {"retry-after": str(retry_after)},
        "json": {"error": {"code": "rate_limited",
                           "message": "more than " + str(limit) + " requests in " + str(window) + " s"}},
    }}
