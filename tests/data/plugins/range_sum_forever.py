# expect: memory | timeout -- sum(range(10**12)): C consumers take at most 1,000,000 items of a long range
def before_request(request):
    return sum(range(10 ** 12))
