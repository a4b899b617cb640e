# expect: invalid -- returning a 100000-bit integer
def before_request(request):
    n = 50000
    request['json'] = 2 ** n
    return request
