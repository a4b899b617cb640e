# expect: load_error -- exiting the worker
def before_request(request):
    exit(1)
