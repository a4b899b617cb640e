# expect: load_error -- type() to reach class objects
def before_request(request):
    return type(request).__subclasses__
