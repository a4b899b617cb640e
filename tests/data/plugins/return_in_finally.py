# expect: load_error -- return inside finally swallows the timeout
def f():
    try:
        while True:
            pass
    finally:
        return 1
def before_request(request):
    while True:
        f()
