# expect: load_error -- setattr on a host object
import json
def before_request(request):
    setattr(json, 'loads', None)
