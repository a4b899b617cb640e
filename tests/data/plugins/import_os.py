# expect: load_error -- import of a module outside the allowlist
import os
def before_request(request):
    return None
