# expect: memory -- 1 << 8e9 at run time
def before_request(request):
    n = 8 * 10 ** 9
    return 1 << n
