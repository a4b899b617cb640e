# expect: error -- monkey-patching a class reached through a module
import datetime
def before_request(request):
    datetime.datetime.now = None
