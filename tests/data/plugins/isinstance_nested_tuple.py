# expect: memory | timeout -- isinstance() with a 64-level shared tuple of classes: 2**64 C steps
def before_request(request):
    kinds = int
    for _ in range(64):
        kinds = (kinds, kinds)
    return isinstance("x", kinds)
