# expect: memory -- 'x' * 10**9 at run time
def before_request(request):
    n = 10 ** 9
    return 'x' * n
