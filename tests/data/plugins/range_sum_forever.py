# expect: memory -- sum(range(10**12)): a C loop that never returns
def before_request(request):
    return sum(range(10 ** 12))
