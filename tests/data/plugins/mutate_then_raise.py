# expect: error -- half-done mutation before a raise must not leak
def before_request(request):
    request['headers']['x-leak'] = '1'
    request['path'] = '/admin'
    raise ValueError('boom')
