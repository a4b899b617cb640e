# expect: memory | timeout -- growing a dict forever
def before_request(request):
    d = {}
    i = 0
    while True:
        d[i] = [i] * 1000
        i += 1
