# expect: memory -- bytes(10**10)
def before_request(request):
    return bytes(10 ** 10)
