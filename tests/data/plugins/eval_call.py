# expect: load_error -- eval
def before_request(request):
    eval('1+1')
