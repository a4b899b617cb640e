# expect: load_error -- vars() on a module
import json
def before_request(request):
    return vars(json)
