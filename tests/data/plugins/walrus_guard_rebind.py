# expect: load_error -- rebinding the _getiter_ guard with an assignment expression
def before_request(request):
    if (_getiter_ := iter):
        return None
