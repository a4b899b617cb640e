# expect: error -- unbounded recursion
def f(n):
    return f(n + 1)
def before_request(request):
    f(0)
