# expect: memory -- 10 ** 10 ** 8 computed at run time
def before_request(request):
    n = 10
    return n ** (10 ** 8)
