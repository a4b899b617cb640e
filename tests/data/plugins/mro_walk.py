# expect: error -- mro() to reach object
def before_request(request):
    return str.mro()
