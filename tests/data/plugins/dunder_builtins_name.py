# expect: load_error -- __builtins__ name
def before_request(request):
    return __builtins__['open']
