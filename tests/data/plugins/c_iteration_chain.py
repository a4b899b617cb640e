# expect: timeout -- chain of C calls over a big string
def before_request(request):
    s = 'x' * 10 ** 7
    s = s + s
    total = 0
    while True:
        total += sum(map(ord, s))
