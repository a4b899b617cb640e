# expect: load_error -- from-import of a forbidden module
from subprocess import run
def before_request(request):
    run(['id'])
