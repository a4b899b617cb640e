# expect: load_error -- bare except swallowing the timeout
def before_request(request):
    while True:
        try:
            while True:
                pass
        except:
            pass
