# expect: memory -- huge %-format width
def before_request(request):
    return '%*d' % (10 ** 9, 1)
