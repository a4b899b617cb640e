# expect: load_error -- raising its own rlimits
import resource
def before_request(request):
    resource.setrlimit(resource.RLIMIT_AS, (-1, -1))
