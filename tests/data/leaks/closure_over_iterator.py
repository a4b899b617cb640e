# expect: refused -- a script function closing over a module-level iterator of lists
def make():
    source = iter([[], []])
    def take():
        return next(source)
    return take
take = make()
def before_request(request):
    kept = take()
    kept.append(request["headers"].get("authorization", "-"))
    request["headers"]["x-seen"] = ",".join(kept)
    return request
