# expect: memory -- str.join amplification
def before_request(request):
    sep = 'x' * 10 ** 6
    return sep.join(['a'] * 10000)
