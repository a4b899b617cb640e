# expect: load_error -- class statement with metaclass tricks
class X(metaclass=type):
    pass
def before_request(request):
    return None
