# expect: error -- getattr with a dunder string
def before_request(request):
    return getattr(request, '__class__')
