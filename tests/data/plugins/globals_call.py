# expect: load_error -- globals()
def before_request(request):
    globals()['state'] = None
