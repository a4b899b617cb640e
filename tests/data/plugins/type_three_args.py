# expect: load_error -- type() class creation
def before_request(request):
    t = type('X', (), {})
