# expect: load_error -- exec
def before_request(request):
    exec('x = 1')
