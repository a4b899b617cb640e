# expect: crash | timeout -- hash of a 300,000-deep nested tuple overflows the C stack (building it may already overrun 100 ms)
# inline: skip (a C-stack overflow kills the process; only isolation: process contains it)
def before_request(request):
    t = ()
    for i in range(300000):
        t = (t,)
    return hash(t)
