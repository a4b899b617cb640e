# expect: memory | timeout -- sum(range(10**12)): a C loop that never returns (a long range feeds C consumers at most 1,000,000 items)
def before_request(request):
    return sum(range(10 ** 12))
