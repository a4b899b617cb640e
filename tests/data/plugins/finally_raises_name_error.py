# expect: timeout -- handler that raises NameError while the timeout unwinds, caught outside
def before_request(request):
    while True:
        try:
            try:
                while True:
                    pass
            finally:
                undefined_name
        except Exception:
            pass
