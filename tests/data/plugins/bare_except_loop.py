# expect: timeout -- bare except (rewritten to `except Exception:` at load) cannot swallow the timeout
def before_request(request):
    while True:
        try:
            while True:
                pass
        except:
            pass
