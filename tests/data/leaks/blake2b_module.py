# expect: refused -- a module-level hashlib.blake2b() was shared (not a known copyable type) and absorbed every request
import hashlib
H = hashlib.blake2b()
def before_request(request):
    H.update(request["headers"].get("authorization", "-").encode())
    request["headers"]["x-seen"] = H.hexdigest()
    return request
