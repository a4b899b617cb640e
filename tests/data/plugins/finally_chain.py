# expect: timeout -- 200 nested frames whose finally blocks spin: the 5 ms re-fire ended one frame at a time
def spin(n):
    if n == 0:
        while True:
            pass
    try:
        spin(n - 1)
    finally:
        while True:
            pass
def before_request(request):
    spin(200)
