# expect: load_error -- raising SystemExit
def before_request(request):
    raise SystemExit(1)
