# expect: refused -- a module-level generator expression was shared as it is; its frame reads load-time globals
SEEN = []
G = (SEEN for _ in range(1000))
def before_request(request):
    kept = next(G)
    kept.append(request["headers"].get("authorization", "-"))
    request["headers"]["x-seen"] = ",".join(kept)
    return request
