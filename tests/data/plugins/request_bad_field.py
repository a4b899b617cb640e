# expect: invalid -- unknown request field
def before_request(request):
    request['admin'] = True
    return request
