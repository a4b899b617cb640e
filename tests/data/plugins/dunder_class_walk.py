# expect: load_error -- object.__subclasses__ walk via __class__
def before_request(request):
    return ().__class__.__bases__[0].__subclasses__()
