# expect: invalid -- header name with a space
def before_request(request):
    request['headers']['bad name'] = 'x'
    return request
