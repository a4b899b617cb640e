"""Allow each tenant its own number of requests per window; answer 429 beyond it (before_request).

Keys on the X-Tenant-Id header that tenant.py sets from the verified identity, so it runs after it
(a higher `order`). Counters live in `state`: per worker in memory, shared by every worker with Redis.
config: {default: 120, limits: {trial: 5}, window_s: 60}
"""
import time


def before_request(request):
    tenant = request["headers"].get("x-tenant-id")
    if not tenant:
        return None  # tenant.py refused the request already, or does not apply to this endpoint
    limit = config.get("limits", {}).get(tenant, config.get("default", 120))
    window = config.get("window_s", 60)
    now = time.time()
    count = state.incr(tenant + ":" + str(int(now // window)), ttl=window)
    if count <= limit:
        return None
    return {"response": {
        "status": 429,
        "headers": {"retry-after": str(int(window - now % window) + 1)},
        "json": {"error": {"code": "rate_limited", "message": "tenant " + tenant + " made more than " +
                           str(limit) + " requests in " + str(window) + " s"}},
    }}
