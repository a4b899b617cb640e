# expect: memory | timeout -- hash() of a 64-level shared tuple: 2**64 C steps over 64 objects
def before_request(request):
    t = ()
    for _ in range(64):
        t = (t, t)
    return hash(t)
