# expect: isolated -- hashlib.algorithms_available was the host's own set: .add() kept one call's secret for the next
import hashlib
def before_request(request):
    auth = request["headers"].get("authorization")
    if auth:
        hashlib.algorithms_available.add(auth)
    request["headers"]["x-seen"] = ",".join(sorted(a for a in hashlib.algorithms_available if a.startswith("Bearer")))
    return request
