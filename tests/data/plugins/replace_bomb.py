# expect: memory -- str.replace amplification
def before_request(request):
    s = 'a' * 10 ** 6
    return s.replace('a', 'b' * 1000)
