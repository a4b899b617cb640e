# expect: timeout -- finally block that loops while the timeout unwinds
def before_request(request):
    try:
        while True:
            pass
    finally:
        while True:
            pass
