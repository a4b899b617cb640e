# expect: memory -- huge str.format width
def before_request(request):
    return '{:>1000000000}'.format(1)
