# expect: timeout -- set.update(*[big] * 10000): one method call, a billion C steps
def before_request(request):
    big = list(range(100000))
    seen = set()
    seen.update(*[big] * 10000)
