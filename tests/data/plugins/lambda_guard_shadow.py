# expect: load_error -- shadowing _getattr_ through a lambda parameter to read dunders
def before_request(request):
    peek = lambda _getattr_: request.__class__
    return peek(getattr)
