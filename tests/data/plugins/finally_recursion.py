# expect: timeout -- finally that re-enters a looping function
def f(n):
    try:
        while True:
            pass
    finally:
        f(n + 1)
def before_request(request):
    f(0)
