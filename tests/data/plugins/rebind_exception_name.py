# expect: load_error -- ValueError = 5 so except fails while unwinding
ValueError = 5
def before_request(request):
    return None
