# expect: load_error -- published RestrictedPython escape: shadowing a guard hook with a positional-only parameter
import json
def poison(_write_, /):
    _write_ = lambda obj: obj
    json.dumps = None
def before_request(request):
    poison(None)
