# expect: refused -- a lambda inside iter([...]) at module level: deepcopy shared it, with its load-time default list
IT = iter([lambda value, acc=[]: acc.append(value) or list(acc)])
def before_request(request):
    remember = next(IT)
    request["headers"]["x-seen"] = ",".join(remember(request["headers"].get("authorization", "-")))
    return request
