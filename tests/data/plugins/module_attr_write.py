# expect: error -- writing to an allowed module (json.dumps = ...)
import json
def before_request(request):
    json.dumps = None
