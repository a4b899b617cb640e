# expect: load_error -- function __globals__
def before_request(request):
    return before_request.__globals__
