# expect: invalid -- returning a 1000-deep nested list
def before_request(request):
    x = []
    for i in range(1000):
        x = [x]
    request['json'] = x
    return request
