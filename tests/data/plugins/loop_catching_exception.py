# expect: timeout -- loop that catches every Exception
def before_request(request):
    while True:
        try:
            while True:
                pass
        except Exception:
            pass
