# expect: memory -- [0] * 10**9
def before_request(request):
    n = 10 ** 9
    return [0] * n
