# expect: memory -- huge f-string width
def before_request(request):
    w = 10 ** 9
    return f'{1:>{w}}'
