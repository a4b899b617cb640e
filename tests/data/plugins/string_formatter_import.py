# expect: load_error -- importing string.Formatter to resolve attribute fields without the guard
from string import Formatter
def before_request(request):
    return Formatter().format("{0.__class__}", 1)
