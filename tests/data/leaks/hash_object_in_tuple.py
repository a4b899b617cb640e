# expect: refused -- a hash object inside a tuple at module level: one object for every call
import hashlib
H = (hashlib.sha256(),)
def before_request(request):
    H[0].update(request["headers"].get("authorization", "-").encode())
    request["headers"]["x-seen"] = H[0].hexdigest()
    return request
