# expect: load_error -- compile
def before_request(request):
    compile('1', 'x', 'eval')
