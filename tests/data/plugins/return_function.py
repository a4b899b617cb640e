# expect: invalid -- returning a function object
def before_request(request):
    request['json'] = before_request
    return request
