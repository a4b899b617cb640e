# expect: memory -- dict.fromkeys over a huge range
def before_request(request):
    return dict.fromkeys(range(10 ** 7))
