# expect: load_error -- file access
def before_request(request):
    open('/etc/passwd').read()
