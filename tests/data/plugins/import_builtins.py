# expect: load_error -- reaching the builtins module
import builtins
def before_request(request):
    builtins.open('/etc/passwd')
