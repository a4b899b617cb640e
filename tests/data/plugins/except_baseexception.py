# expect: load_error -- catching the host's timeout via BaseException
def before_request(request):
    while True:
        try:
            while True:
                pass
        except BaseException:
            pass
