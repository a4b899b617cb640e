# expect: load_error -- 'except X as TypeError' rebinds an exception name later except clauses rely on
def before_request(request):
    try:
        pass
    except ValueError as TypeError:
        pass
