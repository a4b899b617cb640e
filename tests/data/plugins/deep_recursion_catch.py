# expect: timeout -- recursion that catches RecursionError and starts again
def f(n):
    return f(n + 1)
def before_request(request):
    while True:
        try:
            f(0)
        except RecursionError:
            pass
