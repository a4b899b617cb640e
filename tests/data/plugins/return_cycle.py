# expect: invalid -- returning a cyclic structure
def before_request(request):
    d = {}
    d['self'] = d
    request['json'] = d
    return request
