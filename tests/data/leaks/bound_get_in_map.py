# expect: refused -- STORE.get inside map(...) at module level: the copy kept the method bound to the load-time dict
STORE = {"k": []}
GETTERS = map(STORE.get, ["k"])
def before_request(request):
    kept = next(GETTERS)
    kept.append(request["headers"].get("authorization", "-"))
    request["headers"]["x-seen"] = ",".join(kept)
    return request
